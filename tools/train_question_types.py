"""Train the learned question-type layer (prompts/question_types.json) from labelled questions.

A multinomial logistic regression over the packaged MiniLM's vectors of each question's search text
(the vector the engine computes anyway), on the dev questions of evals/patients.jsonl (written and
labelled by helpers who never read the code; the frozen split is never trained on). Its weights are
data, read with numpy at run time; scikit-learn is needed only here. On the dev questions, 4-fold
cross-validation gave 0.69 type agreement against 0.49 for the patterns of prompts/understand.toml.

    .venv/bin/python tools/train_question_types.py     # rewrites prompts/question_types.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from assistant.embed import embed_texts
    from assistant.settings import load_settings
    from assistant.understand import understand

    rows = [json.loads(line) for line in (ROOT / "evals" / "patients.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == "dev"]
    settings = load_settings()
    X = embed_texts([understand(r["question"]).search_text for r in rows], settings.embedding_model)
    y = [r["question_type"] for r in rows]
    model = LogisticRegression(C=16, max_iter=5000).fit(X, y)
    out = {"about": "question types: multinomial logistic regression over MiniLM vectors of the search text; "
                    "written by tools/train_question_types.py from the dev split of evals/patients.jsonl",
           "model": settings.embedding_model or "default", "examples": len(rows),
           "classes": [str(c) for c in model.classes_], "bias": [round(float(b), 6) for b in model.intercept_],
           "weights": [[round(float(w), 6) for w in row] for row in model.coef_]}
    (ROOT / "prompts" / "question_types.json").write_text(json.dumps(out) + "\n", encoding="utf-8")
    print(f"wrote prompts/question_types.json from {len(rows)} questions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
