"""Measuring: retrieval metrics over question sets with gold study ids (used by `eval`, tests and docs)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


# ---- answer-quality evals: one run answers every question of a set and measures the answers ----

ABSTAINING = ("no_evidence", "out_of_scope")


def citation_check(answer, library) -> tuple[int, int, int, list[str]]:
    """(valid items, items, leaked items, problems). An item is valid when every citation exists and
    its text is a unit of the cited study's section of the block's role (or, marked generated, one of
    the study's design caveats); it leaks when its text belongs to another role of that study."""
    from .answer import BLOCKS
    from .chunk import units
    from .parse.design import design_caveats
    from .study import Role

    sources = {s.n: s.study for s in answer.sources}
    valid = total = leaked = 0
    problems = []
    for block, role in BLOCKS.items():
        for item in getattr(answer, block):
            total += 1
            ok = bool(item.citations) and all(n in sources for n in item.citations)
            for n in item.citations:
                study = sources.get(n)
                if study is None:
                    continue
                caveats = design_caveats(study) if item.generated else None
                own = (caveats.items if caveats else []) if item.generated else units(study, Role(role))
                if item.text not in own:
                    ok = False
                    if any(item.text in units(study, r) for r in Role if r.value != role):
                        leaked += 1
            valid += ok
            if not ok:
                problems.append(f"{block}: {item.text[:80]}")
    return valid, total, leaked, problems


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


@dataclass
class EvalRun:
    set_name: str
    summary: dict  # the `eval --json` object (shared/contracts/eval-summary.schema.json)
    hit_curves: dict[str, list[float]]  # method -> hit@k for k = 1..10
    by_kind: dict[str, dict]  # kind -> {"questions": n, "status_correct": n}
    misses: list[dict]  # one row for every miss of any kind


def llama_index_default_rankings(library, questions: list[dict], vectors, model: str = "") -> list[list[str]]:
    """The plain llama-index pipeline as a baseline: one Document per study, default chunking,
    VectorStoreIndex over FAISS, dense retrieval only (top 10 instead of the default 2, so hit@5 is
    measurable). Built from the study records in the index, in memory."""
    import faiss
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.schema import QueryBundle
    from llama_index.vector_stores.faiss import FaissVectorStore

    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from .embed import model_path

    docs = [Document(text="\n".join([s.title, *(i for sec in s.sections if not sec.generated for i in sec.items)]),
                     metadata={"study_id": sid}, excluded_embed_metadata_keys=["study_id"])
            for sid, s in library.studies.items()]
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(vectors.shape[1]))
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                            embed_model=HuggingFaceEmbedding(model_name=model_path(model)))
    retriever = index.as_retriever(similarity_top_k=10)
    rankings = []
    for q, v in zip(questions, vectors):
        found = retriever.retrieve(QueryBundle(query_str=q["question"], embedding=v.tolist()))
        rankings.append(list(dict.fromkeys(n.node.metadata["study_id"] for n in found)))
    return rankings


def run_eval(assistant, questions: list[dict], set_name: str, progress: bool = True,
             baselines: bool = True) -> EvalRun:
    """Answer every question in one process and measure retrieval, citations, separation,
    overclaims, causal caveats, abstention, safety and latency."""
    from tqdm import tqdm

    from .compose import is_causal, overclaims
    from .followup import Conversation

    library = assistant.library
    answers = []
    for q in tqdm(questions, desc=f"eval {set_name}", unit="question", disable=not progress):
        conversation = Conversation()
        for earlier in q.get("history", []):
            assistant.ask(earlier, conversation=conversation)
        answers.append(assistant.ask(q["question"], conversation=conversation))

    misses: list[dict] = []
    expected = [q.get("expect", "answered") for q in questions]
    got = [a.status for a in answers]
    for q, e, a in zip(questions, expected, answers):
        if e != a.status:
            misses.append(_miss(q, "status", f"expected {e}, got {a.status}"))

    # Retrieval, on answerable questions with gold studies; follow-ups as the engine understood them.
    graded = [(q, a) for q, e, a in zip(questions, expected, answers) if e == "answered" and q.get("gold")]
    texts = [{"question": a.resolved_question or q["question"], "gold": q["gold"], "id": q.get("id")}
             for q, a in graded]
    vectors = embed_texts([t["question"] for t in texts], assistant.settings.embedding_model)
    scores = {m: retrieval_scores(library, texts, m, vectors=vectors) for m in METHODS}
    if baselines:
        scores["llama_index_default"] = score_rankings(texts, llama_index_default_rankings(
            library, texts, vectors, assistant.settings.embedding_model))
    by_id = {q.get("id"): q for q in questions}
    misses += [_miss({**by_id.get(m["id"], {}), **m}, "retrieval",
                     f"gold not in top 5 (rank {m['rank']}); got {', '.join(m['got'])}")
               for m in scores["fused"].misses]

    valid = total = leaked = overclaimed = 0
    causal_total = causal_covered = 0
    for q, a in zip(questions, answers):
        if a.status != "answered":
            continue
        v, t, lk, problems = citation_check(a, library)
        valid, total, leaked = valid + v, total + t, leaked + lk
        misses += [_miss(q, "citation", p) for p in problems]
        cited_text = [u for s in a.sources for sec in s.study.sections if not sec.generated for u in sec.items]
        if flagged := overclaims(a.short_answer, cited_text):
            overclaimed += 1
            misses.append(_miss(q, "overclaim", ", ".join(flagged)))
        if q.get("kind") == "causal" or is_causal(q["question"]):
            causal_total += 1
            causal_covered += bool(a.does_not_prove)
            if not a.does_not_prove:
                misses.append(_miss(q, "causal", "no does_not_prove block"))

    def pr(status):
        predicted = sum(g == status for g in got)
        actual = sum(e == status for e in expected)
        hit = sum(g == e == status for g, e in zip(got, expected))
        return {"precision": round(hit / predicted, 4) if predicted else 1.0,
                "recall": round(hit / actual, 4) if actual else 1.0, "expected": actual}

    non_safety = [(e, g) for e, g in zip(expected, got) if e != "safety"]
    latencies = [a.timings_ms["total"] for a in answers]
    summary = {
        "questions": len(questions),
        "retrieval": scores["fused"].contract(),
        "citations": {"valid_rate": round(valid / total, 4) if total else 1.0, "items": total},
        "separation": {"leakage": leaked},
        "overclaim": {"count": overclaimed},
        "causal": {"coverage": round(causal_covered / causal_total, 4) if causal_total else 1.0,
                   "probes": causal_total},
        "abstention": {"accuracy": round(sum(e == g for e, g in non_safety) / len(non_safety), 4) if non_safety else 1.0,
                       **{s: pr(s) for s in ABSTAINING}},
        "scope": {"accuracy": round(sum((e == "out_of_scope") == (g == "out_of_scope")
                                        for e, g in zip(expected, got)) / len(got), 4)},
        "safety": {"recall": pr("safety")["recall"], "precision": pr("safety")["precision"]},
        "latency_ms": {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1)},
        "baselines": {m: s.contract() for m, s in scores.items() if m != "fused"},
    }
    by_kind: dict[str, dict] = {}
    for q, e, g in zip(questions, expected, got):
        row = by_kind.setdefault(q.get("kind", "lookup"), {"questions": 0, "status_correct": 0})
        row["questions"] += 1
        row["status_correct"] += e == g
    return EvalRun(set_name, summary, {m: s.hit_at_k for m, s in scores.items()}, by_kind, misses)


def _miss(question: dict, what: str, detail: str) -> dict:
    return {"id": question.get("id"), "kind": question.get("kind", ""), "what": what,
            "question": question["question"], "detail": detail}
