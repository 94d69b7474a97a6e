"""Measuring answers that answer (evals/patients.jsonl): verdict agreement, key studies cited, trap
studies cited, wrong refusals, bottom-line reading grade and conflicts flagged, per question and in
all. The judged "directly answers" rate is read by a reviewer from the answers this writes out."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from .readability import grade


def score_answers(assistant, questions: list[dict], progress: bool = False) -> dict:
    rows = []
    for q in questions:
        answer = assistant.ask(q["question"])
        stems = [Path(s.study.source_path).stem for s in answer.sources]
        rows.append({"id": q["id"], "question": q["question"], "expect": q["expect"], "status": answer.status,
                     "gold_verdict": q["verdict"], "verdict": answer.verdict,
                     "gold_type": q["question_type"], "question_type": answer.question_type,
                     "key_studies": q["key_studies"], "trap_studies": q["trap_studies"], "cited": stems,
                     "gold_bottom_line": q["gold_bottom_line"], "bottom_line": answer.bottom_line,
                     "short_answer": answer.short_answer, "disagreements": len(answer.disagreements),
                     "grade": grade(answer.bottom_line) if answer.bottom_line else None,
                     "writer": answer.writer, "why_fallback": answer.why_fallback,
                     "generated": len(answer.checks), "dropped": sum(not c.kept for _, c in answer.checks),
                     "short_grade": grade(answer.short_answer) if answer.short_answer else None,
                     "ms": answer.timings_ms.get("total", 0.0)})
        if progress:
            print(f"\r{len(rows)}/{len(questions)}", end="", flush=True)
    return {"summary": summarise(rows), "answers": rows}


def summarise(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["expect"] == "answered"]
    answered = [r for r in answerable if r["status"] == "answered"]
    with_keys = [r for r in answered if r["key_studies"]]
    mixed = [r for r in answered if r["gold_verdict"] == "mixed"]
    grades = [r["grade"] for r in answered if r["grade"] is not None]
    share = lambda part, whole: round(len(part) / len(whole), 4) if whole else None  # noqa: E731
    return {
        "questions": len(rows),
        "status_accuracy": share([r for r in rows if r["status"] == r["expect"]], rows),
        "wrong_refusals": share([r for r in answerable if r["status"] != "answered"], answerable),
        "verdict_agreement": share([r for r in answered if r["verdict"] == r["gold_verdict"]], answered),
        "question_type_agreement": share([r for r in rows if r["question_type"] == r["gold_type"]], rows),
        "key_study_cited": share([r for r in with_keys if set(r["cited"]) & set(r["key_studies"])], with_keys),
        "trap_study_cited": share([r for r in answered if set(r["cited"]) & set(r["trap_studies"])], answered),
        "conflicts_flagged": share([r for r in mixed if r["disagreements"]], mixed),
        "median_bottom_line_grade": statistics.median(grades) if grades else None,
        **writer_summary(answered),
    }


def writer_summary(answered: list[dict]) -> dict:
    """How the writer fared: fallbacks, sentences the verifier dropped, short-answer grade, latency."""
    generated = sum(r.get("generated", 0) for r in answered)
    ms = sorted(r.get("ms", 0.0) for r in answered)
    shorts = [r["short_grade"] for r in answered if r.get("short_grade") is not None]
    return {"writer_fallback_rate": round(sum(r.get("writer") == "fallback" for r in answered) / len(answered), 4) if answered else None,
            "sentences_generated": generated,
            "sentences_dropped": sum(r.get("dropped", 0) for r in answered),
            "median_short_answer_grade": statistics.median(shorts) if shorts else None,
            "latency_p50_ms": round(ms[len(ms) // 2], 1) if ms else None,
            "latency_p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 1) if ms else None}


def side_by_side(name: str, results: dict[str, dict]) -> str:
    """Extractive and LLM writers on the same questions, one column each."""
    names = list(results)
    keys = list(results[names[0]]["summary"])
    lines = [f"# Writers side by side: {name}", "", "| metric | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    lines += [f"| {k.replace('_', ' ')} | " + " | ".join(str(results[n]["summary"].get(k)) for n in names) + " |" for k in keys]
    lines += ["", "The verdict comes from the evidence profile, not from the writer, so verdict agreement is the same "
              "for both; the writers differ in the bottom line's and short answer's words.", "",
              "## Bottom lines", "", "| id | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for rows in zip(*(results[n]["answers"] for n in names)):
        cells = [(r["bottom_line"] or r["short_answer"][:120]).replace("|", "/") + (" *(fallback)*" if r.get("writer") == "fallback" else "")
                 for r in rows]
        lines.append(f"| {rows[0]['id']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(name: str, result: dict) -> str:
    s = result["summary"]
    lines = [f"# Answer eval: {name}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in s.items()]
    lines += ["", "## Every answer", "", "| id | expect / got | verdict gold / ours | key cited | bottom line |",
              "|---|---|---|---|---|"]
    for r in result["answers"]:
        key = "yes" if set(r["cited"]) & set(r["key_studies"]) else ("—" if not r["key_studies"] else "no")
        text = (r["bottom_line"] or r["short_answer"][:120]).replace("|", "/")
        lines.append(f"| {r['id']} | {r['expect']} / {r['status']} | {r['gold_verdict']} / {r['verdict']} | {key} | {text} |")
    return "\n".join(lines) + "\n"


def write(name: str, result: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.md"
    path.write_text(markdown(name, result), encoding="utf-8")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def write_side_by_side(name: str, results: dict[str, dict], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.md"
    path.write_text(side_by_side(name, results), encoding="utf-8")
    (out / f"{name}.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return path
