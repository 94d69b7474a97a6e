"""All settings in one typed place. Precedence: CLI flags > ATLAS_* environment > TOML file > defaults.

The TOML file is `atlas.toml` in the working directory, or the file named by ATLAS_CONFIG.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import get_type_hints


@dataclass
class Settings:
    index_dir: Path = Path("index")
    corpus: list[Path] = field(default_factory=lambda: [Path("corpus")])
    # A local sentence-transformers folder; empty means the packaged all-MiniLM-L6-v2.
    embedding_model: str = ""
    embed_batch_size: int = 64
    top_k: int = 5  # studies retrieved per question (an answer cites 3 in patient mode, 5 for clinicians)
    candidates: int = 50  # chunks each retriever returns before fusion
    backend: str = "extractive"  # the answer engine; extractive is offline and deterministic
    mode: str = "patient"  # patient | clinician
    # When no study speaks to a question it gets `no_evidence` (gate.EvidenceCheck; calibrated on
    # evals/questions.jsonl and evals/retrieval.jsonl, see README): the question's topic must be this
    # similar to some unit, and a study must hold this share of its informative words unless the
    # plain similarity is at least `strong_similarity`.
    min_topic_similarity: float = 0.31
    min_term_coverage: float = 0.35
    strong_similarity: float = 0.57


class SettingsError(ValueError):
    pass


def _coerce(name: str, kind, value):
    try:
        if kind is Path:
            return Path(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if kind == list[Path]:
            items = value if isinstance(value, list) else str(value).split(os.pathsep)
            return [Path(v) for v in items]
        return kind(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {name}: cannot read {value!r} as {getattr(kind, '__name__', kind)}")


def load_settings(overrides: dict | None = None, config: Path | None = None) -> Settings:
    hints = get_type_hints(Settings)
    values: dict = {}
    named = config or (Path(os.environ["ATLAS_CONFIG"]) if os.environ.get("ATLAS_CONFIG") else None)
    if named is not None and not named.is_file():
        raise SettingsError(f"{named}: no such settings file")
    config = named or Path("atlas.toml")
    if config.is_file():
        try:
            values.update(tomllib.loads(config.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise SettingsError(f"{config}: {err}") from None
        unknown = set(values) - set(hints)
        if unknown:
            raise SettingsError(f"{config}: unknown settings {sorted(unknown)}; known: {sorted(hints)}")
    for f in fields(Settings):
        env = os.environ.get(f"ATLAS_{f.name.upper()}")
        if env is not None:
            values[f.name] = env
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    coerced = {k: _coerce(k, hints[k], v) for k, v in values.items()}
    settings = dataclasses.replace(Settings(), **coerced)
    for name in ("top_k", "candidates", "embed_batch_size"):
        if getattr(settings, name) < 1:
            raise SettingsError(f"setting {name}: must be at least 1, got {getattr(settings, name)}")
    for name, allowed in CHOICES.items():
        if getattr(settings, name) not in allowed:
            raise SettingsError(f"setting {name}: {getattr(settings, name)!r} is not one of {', '.join(allowed)}")
    return settings


# The extractive engine is the only backend so far; LLM backends would write the short answer only
# (shared/DESIGN.md) and be verified against the cited evidence.
CHOICES = {"mode": ("patient", "clinician"), "backend": ("extractive",)}
