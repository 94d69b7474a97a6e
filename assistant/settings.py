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
    # Largest corpus file read, in bytes; a larger file is reported and skipped (assistant/parse/limits.py).
    max_file_bytes: int = 20 * 1024 * 1024
    # A local sentence-transformers folder; empty means the packaged all-MiniLM-L6-v2.
    embedding_model: str = ""
    embed_batch_size: int = 64
    top_k: int = 5  # studies retrieved per question (an answer cites 3 in patient mode, 5 for clinicians)
    candidates: int = 50  # chunks each retriever returns before fusion
    # Who writes the bottom line and short answer: "extractive" (offline, deterministic, the default)
    # or "openai" (any OpenAI-compatible server: Ollama's /v1, llama.cpp, vLLM, OpenAI). Nothing is
    # sent anywhere unless this is "openai" and llm_base_url is set. The API key is read only from
    # ATLAS_LLM_API_KEY at request time, never stored here or logged.
    backend: str = "extractive"
    llm_base_url: str = ""  # e.g. http://127.0.0.1:11434/v1
    llm_model: str = ""
    llm_timeout: float = 60.0  # seconds for one whole completion
    llm_max_tokens: int = 400
    llm_temperature: float = 0.0
    llm_format: str = "json_schema"  # json_schema | json_object | text (for servers without structured output)
    # The verifier (verify.py) keeps a generated sentence only when it is this close to a cited unit
    # in embedding space and this share of its content words is found in the cited units.
    verify_min_similarity: float = 0.5
    verify_min_coverage: float = 0.6
    llm_min_kept: float = 0.5  # share of short-answer sentences that must survive, else the fallback
    mode: str = "patient"  # patient | clinician
    # When no study speaks to a question it gets `no_evidence` (gate.EvidenceCheck; calibrated on
    # evals/questions.jsonl and evals/retrieval.jsonl, see README): the question's topic must be this
    # similar to some unit, and a study must hold this share of its informative words unless the
    # plain similarity is at least `strong_similarity`.
    min_topic_similarity: float = 0.31
    min_term_coverage: float = 0.35
    strong_similarity: float = 0.57
    # Where the library lives: "faiss" (the embedded index in index_dir, the default) or "postgres"
    # (a shared Postgres + pgvector store that several servers answer from; assistant/store_pg.py),
    # reached at store_url, e.g. postgresql://atlas:PASSWORD@127.0.0.1:5432/atlas. The URL is never
    # shown or logged with its password.
    store: str = "faiss"
    store_url: str = field(default="", repr=False)
    # PubMed sync (`atlas-assistant sync pubmed`, assistant/pubmed_sync.py): the only network use.
    eutils_url: str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
    ncbi_email: str = ""  # NCBI asks every E-utilities user for one
    ncbi_api_key: str = field(default="", repr=False)  # optional: 10 requests/s instead of 3; never logged
    eutils_retmax: int = 200  # records per efetch batch
    pubmed_library: Path = Path("library/pubmed")  # where synced records are written
    pubmed_query: str = ""  # empty: the default ME/CFS query in prompts/sync.toml


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
    for name in ("top_k", "candidates", "embed_batch_size", "llm_max_tokens", "eutils_retmax"):
        if getattr(settings, name) < 1:
            raise SettingsError(f"setting {name}: must be at least 1, got {getattr(settings, name)}")
    if settings.max_file_bytes < 1:
        raise SettingsError(f"setting max_file_bytes: must be at least 1, got {settings.max_file_bytes}")
    for name, allowed in CHOICES.items():
        if getattr(settings, name) not in allowed:
            raise SettingsError(f"setting {name}: {getattr(settings, name)!r} is not one of {', '.join(allowed)}")
    if settings.backend == "openai" and not (settings.llm_base_url and settings.llm_model):
        raise SettingsError("backend openai needs llm_base_url and llm_model (ATLAS_LLM_BASE_URL, "
                            "ATLAS_LLM_MODEL, or --llm-url/--llm-model)")
    if settings.llm_timeout <= 0:
        raise SettingsError(f"setting llm_timeout: must be more than 0 seconds, got {settings.llm_timeout}")
    return settings


# The LLM writer writes the bottom line and short answer only (shared/DESIGN.md); verify.py checks
# every sentence against the cited units and the extractive text replaces what fails.
CHOICES = {"mode": ("patient", "clinician"), "backend": ("extractive", "openai"), "store": ("faiss", "postgres"),
           "llm_format": ("json_schema", "json_object", "text")}
