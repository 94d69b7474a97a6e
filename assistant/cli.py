"""atlas-assistant: the command line, one small function per stage of the pipeline."""
from __future__ import annotations

import argparse
import json
from datetime import date
import os
import sys
from pathlib import Path

from .study import STUDY_TYPES

from .index import EmptyCorpus, IndexMissing
from .settings import SettingsError, load_settings


class UserError(Exception):
    """A problem the user can fix (missing index, bad file); printed as one line."""


def cmd_validate(args, settings) -> int:
    """parse: check corpus files and report every problem."""
    from .parse import load_corpus

    load = load_corpus(args.paths or settings.corpus)
    for problem in load.problems:
        print(problem)
    errors = len(load.errors)
    print(f"{load.files} files read: {len(load.studies)} valid studies, {errors} errors, "
          f"{len(load.problems) - errors} warnings")
    return 1 if errors else 0


def cmd_inspect(args, settings) -> int:
    """parse, explained: how each file was read, sentence by sentence."""
    from .inspect import as_json_line, inspect_paths, render

    records, problems = inspect_paths(args.paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    try:
        for record in records:
            print(as_json_line(record) if args.json else render(record) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `inspect … | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if any(p.severity == "error" for p in problems) else 0


def cmd_index(args, settings) -> int:
    """chunk + embed + index: build or update the index from corpus files or folders."""
    from .index import build_index

    paths = args.paths or settings.corpus
    summary = build_index(paths, settings, progress=not args.json)
    for warning in summary.warnings:
        print(warning, file=sys.stderr)
    for skip in summary.skipped:
        where = f"{skip['file']}:{skip['line']}" if skip["line"] else skip["file"]
        print(f"skipped {where}: {skip['reason']}", file=sys.stderr)
    if summary.full_rebuild_reason:
        print(f"full rebuild: {summary.full_rebuild_reason}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.contract()))
    else:
        print(f"indexed {summary.studies} studies into {settings.index_dir}/: {summary.chunks} chunks "
              f"({summary.embedded_chunks} embedded, {summary.reused_chunks} reused), "
              f"{len(summary.skipped)} skipped, {summary.seconds:.1f} s "
              f"(model load {summary.model_load_seconds:.1f} s)")
    return 0


def _filters(args):
    from .retrieve import Filters

    return Filters(year_from=args.year_from, year_to=args.year_to,
                   study_types=tuple(args.study_type or ()), pem_required=args.pem_required)


def _open_assistant(settings):
    from .engine import Assistant

    return Assistant(settings)


def _batch_questions(path: Path) -> list[tuple[str, list[str]]]:
    """(question, history) per non-empty line: plain text, or JSONL with a `question` field and an
    optional `history` list. Every line is checked before any is answered."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    questions = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            questions.append((line.strip(), []))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{n}: not a JSON object ({err.msg})") from None
        question, history = record.get("question"), record.get("history", [])
        if not isinstance(question, str) or not question.strip():
            raise UserError(f"{path}:{n}: expected a non-empty text in the 'question' field")
        if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
            raise UserError(f"{path}:{n}: 'history' must be a list of earlier questions (texts)")
        questions.append((question, history))
    return questions


def cmd_ask(args, settings) -> int:
    """gate -> retrieve -> compose -> present, for one question or a batch."""
    from .followup import Conversation
    from .present import table_csv, table_markdown, to_terminal

    if bool((args.question or "").strip()) == bool(args.batch):
        raise UserError("give either a QUESTION (not empty) or --batch FILE")
    if args.batch and not args.batch.is_file():
        raise UserError(f"{args.batch}: no such file")
    questions = _batch_questions(args.batch) if args.batch else [(args.question, [])]
    assistant = _open_assistant(settings)
    for question, history in questions:
        conversation = Conversation()
        for earlier in history:
            assistant.ask(earlier, args.mode, _filters(args), conversation)
        answer = assistant.ask(question, args.mode, _filters(args), conversation)
        if args.table:  # the evidence table alone, for a spreadsheet or a report
            print(table_csv(answer) if args.table == "csv" else table_markdown(answer),
                  end="" if args.table == "csv" else "\n", flush=True)
            continue
        print(json.dumps(answer.contract(), ensure_ascii=False) if args.json
              else to_terminal(answer, args.mode or settings.mode), flush=True)
        if not args.json and len(questions) > 1:
            print("\n" + "─" * 60 + "\n")
    return 0


def cmd_chat(args, settings) -> int:
    """A conversation in the terminal; follow-ups are resolved against earlier turns."""
    from .followup import Conversation
    from .present import to_terminal

    assistant = _open_assistant(settings)
    conversation, mode = Conversation(), args.mode or settings.mode
    print("Ask about ME/CFS research. '/mode clinician' or '/mode patient' switches the audience; "
          "an empty line or /quit ends.")
    while True:
        try:
            question = input("\nyou> ").strip()
        except EOFError:
            return 0
        if question in ("", "/quit", "/exit"):
            return 0
        if question.startswith("/mode"):
            mode = "clinician" if "clin" in question else "patient"
            print(f"mode: {mode}")
            continue
        answer = assistant.ask(question, mode, _filters(args), conversation)
        if answer.resolved_question:
            print(f"(understood as: {answer.resolved_question})")
        print(to_terminal(answer, mode))


def cmd_eval(args, settings) -> int:
    """Answer a question set in one process, measure the answers, write the report."""
    from .eval_report import gate_failures, write_report
    from .evaluate import read_questions, run_eval
    from .index import build_index

    if not args.set.is_file():
        raise UserError(f"{args.set}: no such question set")
    try:
        questions = read_questions(args.set)
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.split:
        questions = [q for q in questions if q.get("split") == args.split]
    if questions and "text" in questions[0]:
        return _eval_safety(args, settings, questions)
    if questions and "key_studies" in questions[0]:
        return _eval_answers(args, settings, questions)
    summary = build_index(args.corpus or settings.corpus, settings, progress=not args.json)
    print(f"index: {summary.studies} studies ({summary.embedded_chunks} chunks embedded, "
          f"{summary.reused_chunks} reused)", file=sys.stderr)
    run = run_eval(_open_assistant(settings), questions, args.set.stem, progress=not args.json)
    report = write_report(run, args.out)
    failures = gate_failures(run.summary)
    print(f"report: {report} (+ .json, .png); {len(run.misses)} misses; CI gate: "
          + ("passes" if not failures else "fails: " + "; ".join(failures)), file=sys.stderr)
    if args.json:
        print(json.dumps(run.summary))
    else:
        print(report.read_text(encoding="utf-8").split("## Retrieval")[0])
    return 0


def _eval_safety(args, settings, items) -> int:
    """The safety gate on a labelled set (evals/safety.jsonl): no index needed."""
    from .embed import embed_texts
    from .safety import SafetyGate
    from .safety_eval import markdown_report, score_safety

    gate = SafetyGate(lambda texts: embed_texts(texts, settings.embedding_model, settings.embed_batch_size))
    splits = sorted({i.get("split", "all") for i in items})
    results = {split: score_safety([i for i in items if i.get("split", "all") == split], gate) for split in splits}
    args.out.mkdir(parents=True, exist_ok=True)
    report = args.out / f"{date.today()}-{args.set.stem}.md"
    report.write_text(markdown_report(args.set.stem, results), encoding="utf-8")
    print(json.dumps({k: v["summary"] for k, v in results.items()}) if args.json else report.read_text(encoding="utf-8"))
    return 0


def _eval_answers(args, settings, questions) -> int:
    """Answers that answer (evals/patients.jsonl) over the bundled corpus."""
    from . import answer_eval
    from .index import build_index

    build_index(args.corpus or settings.corpus, settings, progress=not args.json)
    result = answer_eval.score_answers(_open_assistant(settings), questions, progress=not args.json)
    name = f"{date.today()}-{args.set.stem}" + (f"-{args.split}" if args.split else "")
    report = answer_eval.write(name, result, args.out)
    print(json.dumps(result["summary"]) if args.json else f"\nreport: {report}\n" + json.dumps(result["summary"], indent=1))
    return 0


def cmd_serve(args, settings) -> int:
    """present, in the browser: the Gradio web chat; binds 127.0.0.1 unless --host says otherwise."""
    from .web import serve  # without a usable index the page still starts and says how to fix it

    try:
        serve(settings, args.host, args.port)
    except OSError as err:  # e.g. the port is taken
        raise UserError(f"cannot serve on {args.host}:{args.port}: {err} (try --port)") from None
    return 0


def _add_answer_options(parser) -> None:
    parser.add_argument("--index", dest="index_dir", type=Path, help="index folder (default: index/)")
    parser.add_argument("--mode", choices=["patient", "clinician"], help="audience (default: patient)")
    parser.add_argument("--year-from", type=int, help="only studies from this year on")
    parser.add_argument("--year-to", type=int, help="only studies up to this year")
    parser.add_argument("--study-type", action="append", choices=sorted(STUDY_TYPES),
                        help="only this study type (repeatable)")
    parser.add_argument("--pem-required", action="store_true",
                        help="only studies that required post-exertional malaise for inclusion")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atlas-assistant",
        description="Cited answers from ME/CFS study entries that keep what studies show apart "
                    "from what they do not prove. Not medical advice.")
    parser.add_argument("--config", type=Path, help="TOML settings file (default: atlas.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check corpus files; exit 1 on any error")
    validate.add_argument("paths", nargs="*", type=Path, help="files or folders (default: corpus/)")
    validate.set_defaults(run=cmd_validate)

    inspect = sub.add_parser("inspect", help="how each file was read: metadata, study type and PEM with "
                             "reasons, every sentence with its role and why")
    inspect.add_argument("paths", nargs="+", type=Path, help="files or folders")
    inspect.add_argument("--json", action="store_true", help="one JSON object per study per line")
    inspect.set_defaults(run=cmd_inspect)

    index = sub.add_parser("index", help="build or update the index (incremental, atomic)")
    index.add_argument("paths", nargs="*", type=Path, help="files or folders (default: corpus/)")
    index.add_argument("--index", dest="index_dir", type=Path, help="index folder (default: index/)")
    index.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    index.set_defaults(run=cmd_index)

    ask = sub.add_parser("ask", help="answer one question, or every line of --batch FILE")
    ask.add_argument("question", nargs="?", help="the question, in plain words")
    ask.add_argument("--batch", type=Path, help="a file of questions: plain lines or JSONL with 'question'")
    ask.add_argument("--json", action="store_true", help="print the answer contract as JSON")
    ask.add_argument("--table", choices=["csv", "md"], help="print only the evidence table, as CSV or Markdown")
    _add_answer_options(ask)
    ask.set_defaults(run=cmd_ask)

    chat = sub.add_parser("chat", help="a conversation in the terminal")
    _add_answer_options(chat)
    chat.set_defaults(run=cmd_chat)

    serve = sub.add_parser("serve", help="the web chat in the browser (Gradio)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    serve.add_argument("--index", dest="index_dir", type=Path, help="index folder (default: index/)")
    serve.set_defaults(run=cmd_serve)

    evaluate = sub.add_parser("eval", help="run a question set, write a report with baselines and a plot")
    evaluate.add_argument("--set", type=Path, default=Path("evals/questions.jsonl"), help="JSONL question set")
    evaluate.add_argument("--corpus", nargs="+", type=Path, help="corpus files or folders (default: corpus/)")
    evaluate.add_argument("--index", dest="index_dir", type=Path, help="index folder (default: index/)")
    evaluate.add_argument("--out", type=Path, default=Path("evals/reports"), help="report folder")
    evaluate.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    evaluate.add_argument("--split", choices=["dev", "frozen"], help="only this split of the set")
    evaluate.set_defaults(run=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    overrides = {k: getattr(args, k, None) for k in ("index_dir", "mode")}
    try:
        settings = load_settings(overrides, args.config)
        return args.run(args, settings)
    except (SettingsError, UserError, EmptyCorpus, IndexMissing) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # end users never see a traceback
        if os.environ.get("ATLAS_DEBUG"):
            raise
        print(f"error: {type(err).__name__}: {err} (set ATLAS_DEBUG=1 for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
