"""Reading grade (Flesch–Kincaid) for the patient texts. Our own: textstat downloads a pronunciation
dictionary at run time, which an offline tool must not do. Syllables are counted by vowel groups, the
usual approximation (within about one grade of dictionary counts on plain English)."""
from __future__ import annotations

import re


def syllables(word: str) -> int:
    word = word.lower()
    groups = len(re.findall(r"[aeiouy]+", word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
        groups -= 1  # a silent final e
    return max(1, groups)


def grade(text: str) -> float:
    """Flesch–Kincaid grade level; citation markers and numbers are not words a reader sounds out."""
    text = re.sub(r"\[\d+\]", " ", text)
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", text)
    sentences = max(1, len(re.findall(r"[.!?]+(\s|$)", text)))
    if not words:
        return 0.0
    return round(0.39 * len(words) / sentences + 11.8 * sum(map(syllables, words)) / len(words) - 15.59, 1)
