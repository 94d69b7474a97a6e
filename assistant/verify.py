"""Stage 8, verify: is every sentence of the bottom line and short answer traceable, and is its wording
no stronger than the evidence? Returns the problems; the composer drops what fails (and an LLM
writer's text is replaced by the deterministic one)."""
from __future__ import annotations

import re

from .evidence import EvidenceSet
from .study import Role

CERTAINTY_WORDS = ("prove", "proves", "proved", "proven", "proof", "cure", "cures", "cured", "cause",
                   "causes", "caused", "causing", "confirm", "confirms", "confirmed", "definitely",
                   "definitive", "certainly", "undoubtedly", "guarantees")
CITATION = re.compile(r"\[(\d+)\]")


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"“])", text.strip()) if s]


def overclaims(text: str, source_texts: list[str]) -> list[str]:
    """Certainty words in `text` that none of the given source texts uses (the wording-risk check)."""
    said = set(re.findall(r"[a-z]+", " ".join(source_texts).lower()))
    used = re.findall(r"[a-z]+", text.lower())
    return sorted({w for w in used if w in CERTAINTY_WORDS and w not in said})


def problems(sentence: str, evidence: EvidenceSet, fixed: list[str]) -> list[str]:
    """What is wrong with one sentence: a citation to no source, no citation (unless a fixed sentence
    from prompts/), or a certainty word that the cited studies do not state as an observed finding."""
    numbers = {s.n: s for s in evidence.studies}
    cited = [int(n) for n in CITATION.findall(sentence)]
    found = []
    if any(n not in numbers for n in cited):
        found.append("cites a source that is not in the answer")
    if not cited and sentence not in fixed:
        found.append("no citation")
    observed = [u.text for n in cited if n in numbers for u in numbers[n].units.get(Role.OBSERVED, [])]
    # Quoted limits may use "prove" ("does not prove"): only the writer's own words are checked.
    own = sentence.split(": ", 1)[0] if "cannot tell you" in sentence else sentence
    if words := overclaims(own, observed):
        found.append(f"certainty words the cited findings do not use: {', '.join(words)}")
    return found


def verified(text: str, evidence: EvidenceSet, fixed: list[str]) -> str:
    """The text without its failing sentences."""
    return " ".join(s for s in sentences(text) if not problems(s, evidence, fixed))
