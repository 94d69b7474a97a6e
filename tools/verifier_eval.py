"""Run the sentence verifier on a range of scripted cases (evals/llm_verifier.jsonl) and print the share
of unsupported sentences dropped and of faithful ones kept, by kind, and every miss.

    .venv/bin/python tools/verifier_eval.py c629 c680 [--json OUT.json]

The same checks as tests/test_llm_writer.py's (its helpers are used, so the figures agree), on every
case of the range: a first run of a new frozen split, or a look at dev while tuning."""
from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _test_module():
    spec = importlib.util.spec_from_file_location("test_llm_writer", ROOT / "tests" / "test_llm_writer.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "tests"))
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("last")
    parser.add_argument("--json", type=Path, help="write every sentence's outcome here")
    args = parser.parse_args()
    low, high = int(args.first[1:]), int(args.last[1:])
    tests = _test_module()
    from assistant.engine import Assistant
    from assistant.settings import load_settings

    assistant = Assistant(load_settings())
    scripts = [json.loads(line) for line in (ROOT / "evals" / "llm_verifier.jsonl").open(encoding="utf-8")]
    cases = [c for c in json.loads(tests.CASES.read_text(encoding="utf-8")) if low <= int(c["case"][1:]) <= high]
    evidence = {c["case"]: tests.evidence_of_case(assistant, c) for c in cases}
    outcomes = tests.scripted_outcomes(assistant, scripts, evidence, sorted(evidence))
    by_kind = collections.defaultdict(lambda: [0, 0])
    for line, check in outcomes:
        right = check.kept == (line["label"] == "faithful")
        by_kind[line["kind"]][0] += right
        by_kind[line["kind"]][1] += 1
        if not right:
            print(f"{line['case']} {line['kind']:<20} {'kept' if check.kept else 'dropped'}: {line['sentence']}  <- {check.reasons}")
    unsupported = [c for line, c in outcomes if line["label"] == "unsupported"]
    faithful = [c for line, c in outcomes if line["label"] == "faithful"]
    dropped, kept = sum(not c.kept for c in unsupported), sum(c.kept for c in faithful)
    print(f"\n{args.first}-{args.last}: unsupported dropped {dropped}/{len(unsupported)} ({dropped / len(unsupported):.3f}), "
          f"faithful kept {kept}/{len(faithful)} ({kept / len(faithful):.3f})")
    for kind, (right, total) in sorted(by_kind.items()):
        print(f"  {kind:<20} {right}/{total}")
    if args.json:
        args.json.write_text(json.dumps([{"case": line["case"], "kind": line["kind"], "label": line["label"],
                                          "sentence": line["sentence"], "kept": c.kept, "reasons": c.reasons}
                                         for line, c in outcomes], indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
