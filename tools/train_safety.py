"""Train the safety gate's learned layer (prompts/safety_learned.json) from labelled messages.

A logistic regression over character n-grams (2-5, TF-IDF), danger (crisis or emergency) against
everything else, on every dev message of evals/safety.jsonl (written by helpers who never read the gate),
the described intents of prompts/safety.toml and, as calm examples, the everyday questions of the
answer evals (their dev splits; a safety-labelled question is left out). Character n-grams read typos,
inflections and the five languages alike; in leave-one-set-out cross-validation over sets E-O they found 0.949 of the held-out
crises at 2 % false alarms, against 0.801 for the multilingual-e5-small embeddings used before
(docs/SAFETY.md). The weights are data, read with numpy at run time (assistant/tfidf.py); scikit-learn
is needed only here.

    .venv/bin/python tools/train_safety.py            # rewrites prompts/safety_learned.json
"""
from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from assistant.safety import learned_scores  # noqa: E402

NGRAMS = (2, 5)
C = 32
# Chosen on set O before it joined the training data (trained on A-N and half the everyday questions):
# rules plus this layer caught 0.982 of O's crises at 3.1 % false alarms at 0.6 (0.973 / 2.3 % at 0.7),
# where the embedding layer gave 0.845 / 4.6 %, and raised 1.0 % of the other half of the everyday
# questions. Recall comes first: a borderline alarm still shows the answer.
THRESHOLD = 0.6
# The notes' heads (dose or decision asked; diagnosis asked), on the same n-grams, trained on the dev
# messages' advice labels. Chosen on set AC (held out of the training) before any rule was generalised
# from set AD: at 0.8 the rules plus these heads raised AC's dose-note recall from 0.77 to 0.86 and its
# diagnosis-note recall from 0.85 to 0.88 with precision still 1.0 (held out in turn, sets X, Y and Z
# lost no precision either). A dose asked about what studies used is still not advice (assistant/safety.py).
NOTE_THRESHOLD = 0.8
NOTES = {"dose": ("dose", "decision"), "diagnosis": ("diagnosis",)}


def main() -> int:
    items = [json.loads(line) for line in (ROOT / "evals" / "safety.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    # The frozen split, and a held set not yet run, are never trained on.
    items = [i for i in items if i.get("split", "dev") == "dev"]
    spec = tomllib.loads((ROOT / "prompts" / "safety.toml").read_text(encoding="utf-8"))
    texts = [i["text"] for i in items]
    labels = [int(i["expect"] in ("crisis", "emergency")) for i in items]
    for name in ("crisis", "emergency"):
        texts += spec[name]["described"]["intents"]
        labels += [1] * len(spec[name]["described"]["intents"])
    texts += spec["calm"]["intents"]
    labels += [0] * len(spec["calm"]["intents"])
    everyday = everyday_questions()
    texts += everyday
    labels += [0] * len(everyday)
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=NGRAMS, min_df=2, sublinear_tf=True)
    model = LogisticRegression(C=C, max_iter=5000, class_weight="balanced").fit(vectorizer.fit_transform(texts), labels)
    vocabulary = {t: int(i) for t, i in vectorizer.vocabulary_.items()}
    notes = {name: note_head(vectorizer, items, advice) for name, advice in NOTES.items()}
    out = {"about": "safety gate learned layer: logistic regression over character 2-5-gram TF-IDF; written by "
                    "tools/train_safety.py", "threshold": THRESHOLD, "ngrams": list(NGRAMS), "examples": len(texts),
           "bias": round(float(model.intercept_[0]), 6), "vocabulary": vocabulary,
           "idf": [round(float(x), 5) for x in vectorizer.idf_], "weights": [round(float(w), 5) for w in model.coef_[0]],
           "note_threshold": NOTE_THRESHOLD, "notes": notes}
    check(out, texts, model.predict_proba(vectorizer.transform(texts))[:, 1])
    (ROOT / "prompts" / "safety_learned.json").write_text(json.dumps(out, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote prompts/safety_learned.json from {len(texts)} examples ({len(vocabulary)} n-grams)", file=sys.stderr)
    return 0


def note_head(vectorizer, items: list[dict], advice: tuple[str, ...]) -> dict:
    """A head that reads whether a message asks for this note, from the dev messages' advice labels."""
    labels = [int(i["advice"] in advice) for i in items]
    head = LogisticRegression(C=C, max_iter=5000, class_weight="balanced").fit(vectorizer.transform([i["text"] for i in items]), labels)
    return {"bias": round(float(head.intercept_[0]), 6), "weights": [round(float(w), 5) for w in head.coef_[0]]}


def everyday_questions() -> list[str]:
    """Questions people ask the assistant every day (patients.jsonl dev, questions.jsonl, retrieval.jsonl):
    without them the layer raised 3 % of such questions to the fail-safe middle, with them 1 %."""
    found = []
    for name in ("patients", "questions", "retrieval"):
        for line in (ROOT / "evals" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            if item.get("split", "dev") == "dev" and item.get("expect") != "safety":
                found.append(item["question"])
    return found


def check(out: dict, texts: list[str], expected: np.ndarray) -> None:
    """The gate's own reading (assistant/safety.learned_scores) must give scikit-learn's probabilities."""
    model = {**out, "idf": np.asarray(out["idf"]), "weights": np.asarray(out["weights"]),
             "notes": {name: {**head, "weights": np.asarray(head["weights"])} for name, head in out["notes"].items()}}
    for text, want in zip(texts, expected):
        if abs((got := learned_scores(model, text)["danger"]) - want) > 1e-3:
            raise SystemExit(f"run-time reading differs from scikit-learn ({got:.4f} vs {want:.4f}) on {text[:60]!r}")


if __name__ == "__main__":
    sys.exit(main())
