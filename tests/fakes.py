"""A fake embedder for fast unit tests of logic (safety, compose, verify): no model, deterministic.

Each word is hashed to a few dimensions, so texts that share words are similar, as with a real model,
and unrelated texts are not. Every feature also has a test through the real model."""
from __future__ import annotations

import hashlib
import re

import numpy as np

DIM = 384


def fake_embed(texts: list[str]) -> np.ndarray:
    vectors = np.zeros((len(texts), DIM), dtype="float32")
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            for i in range(0, 8, 2):
                vectors[row, int.from_bytes(digest[i:i + 2], "little") % DIM] += 1.0
        norm = np.linalg.norm(vectors[row])
        vectors[row] = vectors[row] / norm if norm else vectors[row]
    return vectors
