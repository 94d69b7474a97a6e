"""Measuring: retrieval metrics over question sets with gold study ids (used by `eval`, tests and docs)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .embed import embed_texts
from .retrieve import Library

METHODS = ("fused", "dense", "bm25")


def read_questions(path: Path) -> list[dict]:
    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                questions.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not a JSON object ({err.msg})") from None
    return questions


@dataclass
class RetrievalScores:
    hit_at_1: float = 0.0
    hit_at_5: float = 0.0
    mrr_at_10: float = 0.0
    ndcg_at_10: float = 0.0
    hit_at_k: list[float] = field(default_factory=list)  # k = 1..10, for the plot
    misses: list[dict] = field(default_factory=list)  # questions whose gold is not in the top 5

    def contract(self) -> dict:
        return {k: round(getattr(self, k), 4) for k in ("hit_at_1", "hit_at_5", "mrr_at_10", "ndcg_at_10")}


def score_rankings(questions: list[dict], rankings: list[list[str]]) -> RetrievalScores:
    """Metrics for ranked study ids against each question's gold ids."""
    n = len(questions)
    scores = RetrievalScores(hit_at_k=[0.0] * 10)
    for question, ranked in zip(questions, rankings):
        gold = set(question["gold"])
        first = next((i for i, sid in enumerate(ranked[:10]) if sid in gold), None)
        for k in range(10):
            scores.hit_at_k[k] += first is not None and first <= k
        scores.mrr_at_10 += 1 / (first + 1) if first is not None else 0.0
        dcg = sum(1 / math.log2(i + 2) for i, sid in enumerate(ranked[:10]) if sid in gold)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), 10)))
        scores.ndcg_at_10 += dcg / ideal if ideal else 0.0
        if first is None or first >= 5:
            scores.misses.append({"id": question.get("id"), "question": question["question"],
                                  "gold": sorted(gold), "got": ranked[:3], "rank": None if first is None else first + 1})
    scores.hit_at_k = [h / n for h in scores.hit_at_k]
    scores.hit_at_1, scores.hit_at_5 = scores.hit_at_k[0], scores.hit_at_k[4]
    scores.mrr_at_10 /= n
    scores.ndcg_at_10 /= n
    return scores


def retrieval_scores(library: Library, questions: list[dict], method: str = "fused",
                     model: str = "", vectors=None) -> RetrievalScores:
    """Rank studies for each question with one retrieval method and score the ranking."""
    vectors = embed_texts([q["question"] for q in questions], model) if vectors is None else vectors
    rankings = [[h.study.id for h in library.retrieve(q["question"], v, top_k=10, method=method)]
                for q, v in zip(questions, vectors)]
    return score_rankings(questions, rankings)
