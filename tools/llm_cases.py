"""Dump, per question, the data the LLM writer would be given (evals/llm_cases.json's format), so that
a helper who has not read the verifier can script faithful and unsupported sentences against it.

    .venv/bin/python tools/llm_cases.py QUESTIONS.txt --first 51 > cases.json

One question a line; cases are numbered from --first. Questions the assistant does not answer from
the library (refused, out of scope, crisis) are left out, and said so on stderr."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assistant.engine import Assistant
from assistant.llm_writer import prompt_data, supply
from assistant.settings import load_settings
from assistant.writer import TemplateWriter, verdict_sentence


class Recorder(TemplateWriter):
    """The deterministic writer, keeping what an LLM writer would have been given."""

    def __init__(self):
        super().__init__()
        self.data: dict | None = None

    def write(self, evidence, verdict, mode, on_sentence=None):
        self.data = prompt_data(evidence, verdict, verdict_sentence(evidence, verdict), supply(evidence))
        return super().write(evidence, verdict, mode, on_sentence)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--first", type=int, default=1)
    args = parser.parse_args()
    assistant = Assistant(load_settings())
    assistant.writer = recorder = Recorder()
    cases, number = [], args.first
    for question in filter(None, map(str.strip, args.questions.read_text(encoding="utf-8").splitlines())):
        recorder.data = None
        answer = assistant.ask(question, mode="patient")
        if recorder.data is None:
            print(f"left out ({answer.status}): {question}", file=sys.stderr)
            continue
        cases.append({"case": f"c{number:02d}", "question": question, "prompt_data": recorder.data})
        number += 1
    json.dump(cases, sys.stdout, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
