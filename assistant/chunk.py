"""Stage 2, chunk: a Study into llama-index TextNodes, one per citable unit.

Each finding, conclusion and open question is its own node, so an answer can cite one finding; the
not-proven paragraph is split into sentences for the same reason. Every node carries the study title
in its embedded text so it stands alone."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .store import UnitId
from .study import Role, Study

if TYPE_CHECKING:  # llama-index loads only when nodes are built (Postgres store, eval baselines), not to answer
    from llama_index.core.schema import TextNode

CHUNKING_VERSION = 1
SENTENCE_ROLES = {Role.NOT_PROVEN}
# Metadata that only the program reads; the embedding and BM25 see the title and the text.
HIDDEN = ["study_id", "year", "role", "study_type", "pem", "position"]


def sentences(text: str) -> list[str]:
    """Split prose into sentences without breaking 'e.g.' or 'vs.' or decimals."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z(\"“])", text.strip())
    merged: list[str] = []
    for part in parts:
        if merged and re.search(r"\b(e\.g|i\.e|vs|et al|approx|Dr|Fig)\.$", merged[-1]):
            merged[-1] += " " + part
        else:
            merged.append(part)
    return [p for p in merged if p]


def units(study: Study, role: Role) -> list[str]:
    """The citable units of a role, in order: items, or sentences for prose roles that need it.
    Design caveats (generated sections) are derived at answer time and are not units."""
    items = [i for s in study.sections if s.role == role and not s.generated for i in s.items]
    if role in SENTENCE_ROLES:
        return [s for item in items for s in sentences(item)]
    return items


def study_units(study: Study) -> list[tuple[UnitId, str]]:
    """The citable units of a study in index order (roles in reading order), without building nodes:
    what a large index writes."""
    return [(UnitId(study.id, role, position), text)
            for role in dict.fromkeys(s.role for s in study.sections)  # roles in reading order
            for position, text in enumerate(units(study, role))]


def embed_text(study: Study, text: str) -> str:
    """The text a unit is embedded and BM25-indexed by: the title, then the unit (what
    `chunk_study`'s nodes give for get_content(metadata_mode="embed"))."""
    return f"{study.title}: {text}" if study.title else text


def chunk_study(study: Study) -> list[TextNode]:
    from llama_index.core.schema import TextNode

    return [TextNode(
        id_=unit.key(),
        text=text,
        metadata={"title": study.title, "study_id": study.id, "year": study.year or 0,
                  "role": unit.role.value,
                  "study_type": study.study_type, "pem": study.pem.value, "position": unit.position},
        excluded_embed_metadata_keys=HIDDEN,
        excluded_llm_metadata_keys=HIDDEN,
        metadata_template="{value}",
        text_template="{metadata_str}: {content}",
    ) for unit, text in study_units(study)]
