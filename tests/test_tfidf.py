"""The learned layers' TF-IDF reading (assistant/tfidf.py) must give what scikit-learn computed when
their weights were trained (tools/train_*.py), on real messages of the safety eval."""
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from assistant.tfidf import char_ngrams, sublinear_tfidf

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = [json.loads(line)["text"] for line in (ROOT / "evals" / "safety.jsonl").read_text(encoding="utf-8").splitlines()[::37]]
ODD = ["", "a", "  Ça\tva?\n\nNEIN  ", "😅 ok", "x" * 3]


@pytest.mark.parametrize("text", MESSAGES[:20] + ODD)
def test_char_ngrams_are_scikit_learns(text):
    analyzer = TfidfVectorizer(analyzer="char", ngram_range=(2, 5)).build_analyzer()
    assert sorted(char_ngrams(text, 2, 5)) == sorted(analyzer(text))


def test_the_vector_is_scikit_learns():
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(2, 5), min_df=2, sublinear_tf=True).fit(MESSAGES)
    expected = vectorizer.transform(MESSAGES + ODD).toarray()
    for text, row in zip(MESSAGES + ODD, expected):
        index, values = sublinear_tfidf(char_ngrams(text, 2, 5), vectorizer.vocabulary_, vectorizer.idf_)
        got = np.zeros_like(row)
        got[index] = values
        assert np.allclose(got, row), text
