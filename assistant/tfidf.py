"""The TF-IDF vector of a text, as scikit-learn's TfidfVectorizer(sublinear_tf=True) computes it, so that
the learned layers' weights (trained by tools/train_*.py with scikit-learn) are read with numpy alone."""
from __future__ import annotations

import math
import re

import numpy as np

WHITESPACE = re.compile(r"\s\s+")


def sublinear_tfidf(terms: list[str], vocabulary: dict[str, int], idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of the L2-normalised vector: 1 + log(count) times the term's idf, unknown terms
    left out."""
    counts: dict[int, int] = {}
    for term in terms:
        if (i := vocabulary.get(term)) is not None:
            counts[i] = counts.get(i, 0) + 1
    index = np.fromiter(counts, dtype=int, count=len(counts))
    values = np.array([1 + math.log(c) for c in counts.values()]) * idf[index] if counts else np.zeros(0)
    if len(values):
        values /= np.linalg.norm(values)
    return index, values


def char_ngrams(text: str, low: int, high: int) -> list[str]:
    """Character n-grams of the lower-cased text with runs of whitespace folded, as analyzer="char"."""
    text = WHITESPACE.sub(" ", text.lower())
    return [text[i:i + n] for n in range(low, min(high, len(text)) + 1) for i in range(len(text) - n + 1)]
