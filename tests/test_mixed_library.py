"""The library as people actually have it: atlas entries, Markdown summaries and a PubMed MEDLINE
export, indexed together; questions about imported studies cite them by DOI or PMID."""
import json
import textwrap

import pytest

from assistant.engine import Assistant
from assistant.evaluate import read_questions, run_eval
from assistant.index import build_index
from assistant.settings import Settings
from conftest import CORPUS, ROOT, SHARED, SUMMARIES, need

RECORDS = SHARED / "pubmed" / "records.json"


def medline(record: dict) -> str:
    """One real PubMed record (from the shared JSON) written the way PubMed exports MEDLINE text."""
    def tag(name, value):
        lines = textwrap.wrap(value, 70)
        return f"{name:<4}- {lines[0]}\n" + "".join(f"      {line}\n" for line in lines[1:])
    text = tag("PMID", record["pmid"]) + tag("DP", str(record["year"])) + tag("TI", record["title"])
    text += tag("AB", record["abstract"]) + "".join(tag("AU", a) for a in record["authors"])
    return text + tag("PT", "Journal Article")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    need(SUMMARIES)
    records = [r for r in json.loads(need(RECORDS).read_text())["papers"] if r.get("abstract")][:3]
    folder = tmp_path_factory.mktemp("pubmed")
    (folder / "export.nbib").write_text("\n".join(medline(r) for r in records), encoding="utf-8")
    settings = Settings(index_dir=tmp_path_factory.mktemp("mixed-index"))
    summary = build_index([CORPUS, SUMMARIES, folder / "export.nbib"], settings, progress=False)
    return summary, Assistant(settings), records


def test_everything_indexes_with_an_explained_skipped_list(mixed):
    summary, assistant, records = mixed
    formats = {s.source_format for s in assistant.library.studies.values()}
    assert {"atlas", "markdown", "medline"} <= formats
    assert summary.studies >= 65 + 200 + 3 - 64  # corpus entries merge with their source summaries
    assert 1 <= len(summary.skipped) <= 6
    assert all(s["file"] and s["reason"] for s in summary.skipped)
    assert any("duplicate study" in s["reason"] for s in summary.skipped)


def test_merged_study_keeps_the_atlas_sections(mixed):
    _, assistant, _ = mixed
    study = assistant.library.studies["doi:10.3390/diagnostics9030070"]
    assert study.source_format == "atlas"
    assert "Observed Findings" in [s.heading for s in study.sections]


def test_questions_about_imported_studies_cite_their_doi_or_pmid(mixed):
    _, assistant, records = mixed
    questions = read_questions(ROOT / "evals" / "summaries.jsonl")[:8]
    for q in questions:
        answer = assistant.ask(q["question"])
        assert answer.status == "answered", q["question"]
        dois = {f"doi:{s['doi']}" for s in answer.contract()["sources"] if s["doi"]}
        assert dois & set(q["gold"]), (q["question"], dois)
    record = records[0]
    answer = assistant.ask(record["title"])
    pmids = [s["pmid"] for s in answer.contract()["sources"]]
    assert record["pmid"] in pmids


def test_summaries_eval_set_runs_on_the_imported_summaries(mixed):
    _, assistant, _ = mixed
    questions = read_questions(ROOT / "evals" / "summaries.jsonl")
    assert len(questions) >= 40
    run = run_eval(assistant, questions, "summaries", progress=False, baselines=False)
    s = run.summary
    assert s["retrieval"]["hit_at_5"] >= 0.9, run.misses
    assert s["separation"]["leakage"] == 0 and s["overclaim"]["count"] == 0
    assert s["citations"]["valid_rate"] == 1.0 and s["causal"]["coverage"] == 1.0, run.misses
