"""Smoke run of the LLM writer with a real small model (not a test; nothing in CI calls it).

Starts SmolLM2-135M-Instruct behind llama-cpp-python's OpenAI-compatible server
(bench/llm_smoke_server.sh, one-time setup described there), answers a few questions with
`backend = "openai"`, and reports per question what the model wrote, what the verifier kept and
dropped (with reasons), whether the deterministic answer was used instead, and the latency.

    .venv/bin/python bench/llm_smoke.py                       # 5 questions -> docs/LLM_SMOKE.md
    .venv/bin/python bench/llm_smoke.py --url http://127.0.0.1:11434/v1 --model llama3.2   # e.g. Ollama
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTIONS = [
    "does low dose naltrexone actually work?",
    "why do i crash like 2 days after doing too much",
    "is the mito thing real? do our cells not make energy properly?",
    "my heart races when i stand up, is that part of ME?",
    "will i ever get better? its been 6 years",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an OpenAI-compatible server already running (default: start SmolLM2)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--format", default="json_object", choices=["json_schema", "json_object", "text"])
    parser.add_argument("--index", type=Path, default=Path("/tmp/llm-smoke-index"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "LLM_SMOKE.md")
    args = parser.parse_args()

    from assistant.engine import Assistant
    from assistant.index import build_index
    from assistant.settings import Settings

    server = None
    if not args.url:
        subprocess.run([str(ROOT / "bench" / "llm_smoke_server.sh")], check=True)
        server = Path(os.environ.get("LLM_SMOKE_PIDFILE", "/tmp/llm-smoke-server.pid")).read_text().strip()
        args.url = f"http://127.0.0.1:{os.environ.get('LLM_SMOKE_PORT', '8765')}/v1"
    try:
        base = Settings(index_dir=args.index)
        build_index([ROOT / "corpus"], base, progress=False)
        extractive = Assistant(base)
        llm = Assistant(replace(base, backend="openai", llm_base_url=args.url, llm_model=args.model,
                                llm_format=args.format, llm_timeout=600.0, llm_max_tokens=350))
        report = [f"# LLM writer smoke run: {args.model} at {args.url} ({args.format})", "",
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one CPU thread on the shared 2-core machine.", ""]
        for question in QUESTIONS:
            print(f"asking: {question}", file=sys.stderr, flush=True)
            began = time.perf_counter()
            answer = llm.ask(question)
            seconds = time.perf_counter() - began
            plain = extractive.ask(question)
            report += section(question, answer, plain, seconds)
        args.out.write_text("\n".join(report) + "\n", encoding="utf-8")
        print(f"report: {args.out}", file=sys.stderr)
    finally:
        if server:
            subprocess.run(["kill", server], check=False)
    return 0


def section(question, answer, plain, seconds) -> list[str]:
    lines = [f"## {question}", "", f"- writer: **{answer.writer}**" + (f" — {answer.why_fallback}" if answer.why_fallback else ""),
             f"- time: {seconds:.0f} s", f"- bottom line shown: {answer.bottom_line}",
             f"- short answer shown: {answer.short_answer}", f"- the extractive bottom line, for comparison: {plain.bottom_line}", ""]
    if answer.checks:
        lines += ["| part | sentence the model wrote | verifier |", "|---|---|---|"]
        for part, check in answer.checks:
            verdict = "kept " + "".join(f"[{n}]" for n in check.citations) if check.kept else "dropped: " + "; ".join(check.reasons)
            lines.append(f"| {part} | {check.text.replace('|', '/')} | {verdict.replace('|', '/')} |")
        lines.append("")
    return lines


if __name__ == "__main__":
    sys.exit(main())
