"""atlas-assistant: the command line, one small function per stage of the pipeline."""
from __future__ import annotations

import argparse
import difflib
import json
import re
from dataclasses import replace
from datetime import date
import os
import sys
from pathlib import Path

from .study import STUDY_TYPES

from .settings import SettingsError, load_settings


class UserError(Exception):
    """A problem the user can fix (missing index, bad file); printed as one line."""


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors printed as one line with exit 2. The index's own come from assistant.index, which is
    only imported (with llama-index) by commands that need it; if it is not loaded, none was raised."""
    errors: list[type[Exception]] = [SettingsError, UserError]
    index = sys.modules.get(f"{__package__}.index")
    if index is not None:
        errors += [index.EmptyCorpus, index.IndexMissing]
    return tuple(errors)


def _existing(paths: list[Path], consequence: str) -> list[Path]:
    """The paths, when every one exists; else a UserError (exit 2) naming each one that does not,
    before anything is read or written."""
    missing = [f"{p}: {'broken link (its target does not exist)' if p.is_symlink() else 'no such file or folder'}"
               for p in paths if not p.exists()]
    if missing:
        raise UserError("; ".join(missing) + f" ({consequence})")
    return paths


def _index_state(settings) -> str:
    """What a failed `index` left behind, truthfully."""
    from .index import live_build_name

    if getattr(settings, "store", "faiss") != "faiss":
        return f"the {settings.store} store was left as it was"
    return (f"the index at {settings.index_dir}/ was left as it was" if live_build_name(Path(settings.index_dir))
            else f"no index was created at {settings.index_dir}/")


def cmd_validate(args, settings) -> int:
    """parse: check corpus files and report every problem."""
    from .parse import load_corpus

    load = load_corpus(_existing(args.paths or settings.corpus, "nothing was checked"), settings.max_file_bytes)
    for problem in load.problems:
        print(problem)
    errors = len(load.errors)
    print(f"{load.files} files read: {len(load.studies)} valid studies, {errors} errors, "
          f"{len(load.problems) - errors} warnings")
    return 1 if errors else 0


def cmd_inspect(args, settings) -> int:
    """parse, explained: how each file was read, sentence by sentence."""
    from .inspect import as_json_line, inspect_paths, render

    records, problems = inspect_paths(_existing(args.paths, "nothing was read"), settings.max_file_bytes)
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
    if any(not p.exists() for p in paths):
        _existing(paths, f"nothing was indexed; {_index_state(settings)}")
    summary = build_index(paths, settings, progress=not args.json)
    from .vector_cache import warm

    warm(settings)  # the gate's vectors, so the first `ask` does not embed them
    for warning in summary.warnings:
        print(warning, file=sys.stderr)
    for skip in summary.skipped:
        where = f"{skip['file']}:{skip['line']}" if skip["line"] else skip["file"]
        print(f"skipped {where}: {skip['reason']}", file=sys.stderr)
    if summary.full_rebuild_reason:
        print(f"full rebuild: {summary.full_rebuild_reason}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.contract()))
    elif settings.store == "postgres":
        from .store_pg import safe_url, text

        print(text("indexed", where=safe_url(settings.store_url), studies=summary.studies, chunks=summary.chunks,
                   embedded=summary.embedded_chunks, reused=summary.reused_chunks, skipped=len(summary.skipped),
                   seconds=summary.seconds, load=summary.model_load_seconds))
    else:
        print(f"indexed {summary.studies} studies into {settings.index_dir}/: {summary.chunks} chunks "
              f"({summary.embedded_chunks} embedded, {summary.reused_chunks} reused), "
              f"{len(summary.skipped)} skipped, {summary.seconds:.1f} s "
              f"(model load {summary.model_load_seconds:.1f} s)")
    if args.strict and summary.skipped:
        print(f"--strict: {len(summary.skipped)} skipped (listed above); exit 1. The index was still "
              "updated with everything else.", file=sys.stderr)
        return 1
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
    questions: list[tuple[str, list[str]]] = []
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
    from .prompts import table

    assistant = _open_assistant(settings)
    conversation, mode = Conversation(), args.mode or settings.mode
    print(table("web")["chat_intro"])
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
        # A model writer streams: each sentence is shown as soon as it passed the verifier; the
        # full answer (or the built-in one, if the model's text failed) follows.
        streaming = settings.backend != "extractive"
        stream = (lambda part, text: print(f"  … {text}", flush=True)) if streaming else None
        answer = assistant.ask(question, mode, _filters(args), conversation, on_sentence=stream)
        if answer.resolved_question:
            print(f"(understood as: {answer.resolved_question})")
        print(("\n" if streaming else "") + to_terminal(answer, mode))


def cmd_eval(args, settings) -> int:
    """Answer a question set in one process, measure the answers, write the report."""
    from .eval_report import gate_failures, write_report
    from .evaluate import read_questions, run_eval
    from .index import build_index

    if not args.set.is_file():
        raise UserError(f"{args.set}: no such question set")
    if args.corpus:
        _existing(args.corpus, "nothing was evaluated")
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
    name = f"{date.today()}-{args.set.stem}" + (f"-{args.split}" if args.split else "")
    if settings.backend != "extractive":  # the model's writer beside the built-in one, same questions
        results = {w: answer_eval.score_answers(_open_assistant(replace(settings, backend=w)), questions,
                                                progress=not args.json)
                   for w in ("extractive", settings.backend)}
        report = answer_eval.write_side_by_side(f"{name}-writers", results, args.out)
        result = {"summary": {w: r["summary"] for w, r in results.items()}}
    else:
        result = answer_eval.score_answers(_open_assistant(settings), questions, progress=not args.json)
        report = answer_eval.write(name, result, args.out)
    print(json.dumps(result["summary"]) if args.json else f"\nreport: {report}\n" + json.dumps(result["summary"], indent=1))
    return 0


def cmd_sync(args, settings) -> int:
    """fetch: new and updated PubMed records into a library folder (the only command that uses the network)."""
    from .pubmed_sync import SyncError, sync_pubmed

    try:
        summary = sync_pubmed(settings, library=args.library, query=args.query, since=args.since,
                              pmids_file=args.pmids, progress=not args.json)
    except SyncError as err:
        raise UserError(str(err)) from None
    for error in summary.errors:
        print(f"error: {error}", file=sys.stderr)
    print(json.dumps(summary.contract(), ensure_ascii=False) if args.json else summary.text())
    return 0 if summary.complete else 1


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
    _add_writer_options(parser)


def _add_writer_options(parser) -> None:
    parser.add_argument("--backend", choices=["extractive", "openai"],
                        help="who writes the bottom line and short answer (default: extractive, offline); "
                             "openai = any OpenAI-compatible server, every sentence verified")
    parser.add_argument("--llm-url", dest="llm_base_url",
                        help="the server's base URL, e.g. http://127.0.0.1:11434/v1 (Ollama); key from ATLAS_LLM_API_KEY")
    parser.add_argument("--llm-model", dest="llm_model", help="the model name the server knows")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    index.add_argument("--strict", action="store_true",
                       help="exit 1 when any path or record was skipped (the index still takes what could be read)")
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
    _add_writer_options(serve)
    serve.set_defaults(run=cmd_serve)

    evaluate = sub.add_parser("eval", help="run a question set, write a report with baselines and a plot")
    evaluate.add_argument("--set", type=Path, default=Path("evals/questions.jsonl"), help="JSONL question set")
    evaluate.add_argument("--corpus", nargs="+", type=Path, help="corpus files or folders (default: corpus/)")
    evaluate.add_argument("--index", dest="index_dir", type=Path, help="index folder (default: index/)")
    evaluate.add_argument("--out", type=Path, default=Path("evals/reports"), help="report folder")
    evaluate.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    evaluate.add_argument("--split", choices=["dev", "frozen"], help="only this split of the set")
    _add_writer_options(evaluate)
    evaluate.set_defaults(run=cmd_eval)

    sync = sub.add_parser("sync", help="fetch new and updated PubMed records into a library folder "
                          "(NCBI E-utilities; resumable; retractions flagged)")
    sync.add_argument("source", choices=["pubmed"], help="where from (PubMed)")
    sync.add_argument("--query", help="PubMed search (default: the ME/CFS search in prompts/sync.toml)")
    sync.add_argument("--since", help="only records added or changed since this date (YYYY-MM-DD; default: "
                      "the last sync of the same search)")
    sync.add_argument("--pmids", type=Path, help="fetch these PMIDs instead: a BibTeX file or a plain list")
    sync.add_argument("--library", type=Path, help="library folder to write (default: library/pubmed/)")
    sync.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    sync.set_defaults(run=cmd_sync)
    return parser


class Parser(argparse.ArgumentParser):
    """argparse that names the closest flag, command or choice when one is mistyped, with the usage
    of the command it belongs to (`ask --jsn` shows `ask`'s usage and suggests --json)."""

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            commands = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
            owner = commands.get(getattr(parsed, "command", None), self)
            owner.error(_unrecognized(extras, owner))
        return parsed

    def error(self, message: str):
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice[2])
            close = difflib.get_close_matches(choice[1], options, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean '{close[0]}'?"
        super().error(message)


def _unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> str:
    """One message for what argparse did not recognise: each flag with its closest match."""
    flags = [s for action in parser._actions for s in action.option_strings]
    words = [e for e in extras if not e.startswith("-") or e == "-"]
    parts = []
    for extra in extras:
        if extra in words:
            continue
        close = difflib.get_close_matches(extra.split("=", 1)[0], flags, n=1, cutoff=0.6)
        parts.append(f"unrecognized argument: {extra}" + (f" (did you mean {close[0]}?)" if close else ""))
    if words:
        hint = " (put a question of several words in quotes)" if parser.prog.endswith(" ask") else ""
        parts.append(f"unexpected argument{'s' if len(words) > 1 else ''}: {' '.join(words)}{hint}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    if args.command in ("ask", "chat", "serve"):
        # Answering encodes a few short texts at a time: one OpenMP thread each is as fast, and a second
        # one spin-waits whenever another process holds the other core (a 4-bit model took 293 ms a
        # question on two threads against 74 ms on one, on a busy 2-core machine; torch already encodes
        # questions on one thread, embed.py). Set before any model library loads.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    overrides = {k: getattr(args, k, None) for k in ("index_dir", "mode", "backend", "llm_base_url", "llm_model")}
    try:
        settings = load_settings(overrides, args.config)
        return args.run(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # end users never see a traceback
        if isinstance(err, _user_errors()):
            print(f"error: {err}", file=sys.stderr)
            return 2
        if os.environ.get("ATLAS_DEBUG"):
            raise
        print(f"error: {type(err).__name__}: {err} (set ATLAS_DEBUG=1 for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
