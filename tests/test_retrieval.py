"""Hybrid retrieval on the real index of the bundled corpus: fusion, filters, grouping, quality."""

import pytest

from assistant.embed import embed_texts
from assistant.evaluate import METHODS, read_questions, retrieval_scores
from assistant.retrieve import Filters
from conftest import ROOT


def ask(library, question, **kwargs):
    return library.retrieve(question, embed_texts([question])[0], **kwargs)


def test_results_are_grouped_one_entry_per_study(library):
    hits = ask(library, "mitochondria energy production ATP", top_k=8, per_study=3)
    ids = [h.study.id for h in hits]
    assert len(ids) == len(set(ids)) == 8
    assert all(1 <= len(h.evidence) <= 3 for h in hits)
    assert all(e.node_id.startswith(h.study.id + "::") for h in hits for e in h.evidence)


def test_fusion_finds_what_each_retriever_finds(library):
    # A rare exact term (lexical) and a paraphrase with no shared keywords (semantic).
    lexical = "WASF3 protein"
    semantic = "tiny organisms living in the intestines of people with this illness"
    for question, method in ((lexical, "bm25"), (semantic, "dense")):
        single = ask(library, question, method=method, top_k=1)[0].study.id
        fused = [h.study.id for h in ask(library, question, top_k=3)]
        assert single in fused, (question, method)
    assert "WASF3" in ask(library, lexical, top_k=1)[0].study.title
    assert "gut" in " ".join(h.study.title.lower() for h in ask(library, semantic, top_k=3))


@pytest.mark.parametrize("filters, check", [
    (Filters(year_from=2026), lambda s: s.year >= 2026),
    (Filters(year_to=2023), lambda s: s.year <= 2023),
    (Filters(year_from=2024, year_to=2025), lambda s: 2024 <= s.year <= 2025),
    (Filters(study_types=("rct",)), lambda s: s.study_type == "rct"),
    (Filters(pem_required=True), lambda s: s.pem.value == "required"),
])
def test_filters_hold_for_every_result(library, filters, check):
    hits = ask(library, "fatigue treatment and immune findings", filters=filters, top_k=10)
    assert hits, "the filter should still leave studies in the bundled corpus"
    assert all(check(h.study) for h in hits)


def test_filters_that_exclude_everything_return_nothing(library):
    assert ask(library, "fatigue", filters=Filters(year_to=1999)) == []


def test_retrieval_quality_on_our_question_set(library):
    questions = read_questions(ROOT / "evals" / "retrieval.jsonl")
    assert len(questions) >= 60
    vectors = embed_texts([q["question"] for q in questions])
    scores = {m: retrieval_scores(library, questions, m, vectors=vectors) for m in METHODS}
    fused, dense, bm25 = scores["fused"], scores["dense"], scores["bm25"]
    assert fused.hit_at_5 >= 0.95, fused.misses
    assert fused.mrr_at_10 > max(dense.mrr_at_10, bm25.mrr_at_10)
    assert fused.hit_at_1 >= max(dense.hit_at_1, bm25.hit_at_1)
