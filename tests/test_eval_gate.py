"""The answer-quality gate: a regression in the evals fails CI and names the failing questions."""
import json

import jsonschema

from assistant.cli import main
from assistant.eval_report import gate_failures
from assistant.evaluate import read_questions, run_eval
from conftest import ROOT


def test_eval_gate_on_the_corpus_question_set(assistant):
    questions = read_questions(ROOT / "evals" / "questions.jsonl")
    kinds = {q["kind"] for q in questions}
    assert len(questions) >= 100 and {"lookup", "causal", "multi", "followup", "no_evidence",
                                      "out_of_scope", "safety"} <= kinds
    run = run_eval(assistant, questions, "questions", progress=False, baselines=False)
    failures = gate_failures(run.summary)
    named = [f"{m['id']} ({m['what']}): {m['question']} -> {m['detail']}" for m in run.misses]
    assert not failures, failures + named
    assert run.summary["citations"]["valid_rate"] == 1.0 and run.summary["causal"]["coverage"] == 1.0, named


def test_eval_command_writes_report_plot_and_json(corpus_index, tmp_path, capsys, eval_summary_schema):
    subset = tmp_path / "subset.jsonl"
    lines = (ROOT / "evals" / "questions.jsonl").read_text().splitlines()
    subset.write_text("\n".join(lines[::10]) + "\n")
    out = tmp_path / "reports"
    code = main(["eval", "--set", str(subset), "--index", str(corpus_index.index_dir), "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    jsonschema.validate(summary, eval_summary_schema)
    assert set(summary["baselines"]) == {"dense", "bm25", "llama_index_default"}
    report = next(out.glob("*-subset.md")).read_text()
    assert "## Retrieval: ours beside the baselines" in report and "](" in report
    png = next(out.glob("*-subset.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
