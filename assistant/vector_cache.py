"""Vectors of fixed texts, kept on disk between runs: the safety gate's described intents and the
scope gate's examples (prompts/*.toml), about 185 texts that every `ask` and `serve` would otherwise
embed before answering anything (seconds of a cold start).

A file is used only for exactly the same texts, in the same order, embedded by the same model files
(their names, sizes and modification times are part of the key), and only when it holds one unit
vector per text; anything else is embedded again and written anew. Questions are never cached here.

Where: ATLAS_CACHE_DIR, else $XDG_CACHE_HOME/atlas-assistant, else ~/.cache/atlas-assistant. A folder
that cannot be written costs only the time to embed; it is never an error."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .embed import model_name, model_path

Embed = Callable[[list[str]], np.ndarray]


def cache_dir() -> Path:
    if os.environ.get("ATLAS_CACHE_DIR"):
        return Path(os.environ["ATLAS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "atlas-assistant"


def model_fingerprint(setting: str = "") -> str:
    """The model's name and its files (name, size, modification time): a changed model is a new key."""
    parts = [model_name(setting)]
    try:
        folder = Path(model_path(setting))
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file():
                stat = path.stat()
                parts.append(f"{path.relative_to(folder)}:{stat.st_size}:{int(stat.st_mtime)}")
    except (OSError, ImportError):  # no local folder (a test's fake model): the name alone
        pass
    return "\n".join(parts)


def key(kind: str, texts: list[str], setting: str = "") -> str:
    digest = hashlib.sha256()
    for part in (kind, model_fingerprint(setting), *texts):
        digest.update(part.encode("utf-8") + b"\0")
    return digest.hexdigest()[:32]


def fixed_vectors(kind: str, texts: list[str], embed: Embed, setting: str = "") -> np.ndarray:
    """embed(texts), from the cache when it holds them (see the module's docstring)."""
    folder = cache_dir()
    path = folder / f"{kind}-{key(kind, texts, setting)}.npy"
    cached = _read(path, len(texts))
    if cached is not None:
        return cached
    vectors = np.asarray(embed(texts), dtype="float32")
    write_npy(folder, path, kind, vectors)
    return vectors


def _read(path: Path, rows: int) -> np.ndarray | None:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[0] != rows:
        return None
    norms = np.linalg.norm(vectors.astype("float64"), axis=1) if rows else np.ones(0)
    if not np.all(np.isfinite(norms)) or np.any(np.abs(norms - 1.0) > 1e-3):
        return None  # damaged, or not the normalised vectors this module writes
    return vectors


def write_npy(folder: Path, path: Path, kind: str, vectors: np.ndarray) -> None:
    """Write atomically (a reader sees the old file or the whole new one) and drop this kind's older files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{kind}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, vectors, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for old in folder.glob(f"{kind}-*.npy"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full disk: the vectors were computed, only not kept


def warm(settings) -> None:
    """Embed the gate's fixed texts and export the question encoder now if the cache lacks them
    (`index` calls this, so the first `ask` after it starts as fast as the next; `serve` exports only).
    Never fails a command: a problem only costs time later."""
    try:
        from .embed import embed_texts
        from .gate import Scope
        from .query_encoder import export
        from .safety import SafetyGate

        export(settings.embedding_model)  # questions then skip torch (query_encoder.py)

        def embed(texts: list[str]) -> np.ndarray:
            return embed_texts(texts, settings.embedding_model, settings.embed_batch_size)

        SafetyGate(embed, lambda kind, texts: fixed_vectors(kind, texts, embed, settings.embedding_model)).load()
        Scope(settings.embedding_model, settings.embed_batch_size).load()
    except Exception:  # noqa: BLE001 - a cache is an optimisation
        pass
