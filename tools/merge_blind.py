"""Merge a blind-written, blind-labelled round into its eval set: the new round becomes the frozen
split, and the frozen split before it joins dev (it was run once, untuned, and reported).

    .venv/bin/python tools/merge_blind.py safety   WRITER_ITEMS.jsonl LABELS.jsonl
    .venv/bin/python tools/merge_blind.py patients WRITER_QUESTIONS.jsonl LABELS.jsonl --set P25
    .venv/bin/python tools/merge_blind.py verifier CASES.json SENTENCES.jsonl LABELS.jsonl KEY.json [...more]

The labeller's labels decide; the writer's intent is kept beside them (`writer_intent`, `writer_note`)
so that disagreements can be read. The helpers' briefs are in evals/briefs/. Nothing is dropped: a
label missing for an item, an id out of order or a study id the corpus lacks stops the merge."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def paired(written: list[dict], labels: list[dict], key: str = "id") -> list[tuple[dict, dict]]:
    if [w[key] for w in written] != [lab[key] for lab in labels]:
        sys.exit(f"labels do not match the written items one for one (by {key!r})")
    return list(zip(written, labels))


def merge_safety(items: Path, labels: Path) -> None:
    path = ROOT / "evals" / "safety.jsonl"
    rows = [{**r, "split": "dev"} for r in read_jsonl(path)]
    known = {r["id"] for r in rows}
    for w, lab in paired(read_jsonl(items), read_jsonl(labels)):
        if w["id"] in known:
            sys.exit(f"{items}: id {w['id']} is already in {path}")
        rows.append({"id": w["id"], "text": w["text"], "language": w["language"], "expect": lab["expect"],
                     "advice": lab["advice"], "audience": lab["audience"], "writer_intent": w["writer_intent"],
                     "split": "frozen", "label_note": lab.get("label_note", "")})
    write_jsonl(path, rows)
    print(f"{path}: {len(rows)} items, {sum(r['split'] == 'frozen' for r in rows)} frozen")


def merge_patients(questions: Path, labels: Path, name: str) -> None:
    path = ROOT / "evals" / "patients.jsonl"
    studies = {p.stem for p in (ROOT / "corpus").glob("*.txt")}
    rows = [{**r, "split": "dev"} for r in read_jsonl(path)]
    for q, lab in paired(read_jsonl(questions), read_jsonl(labels)):
        unknown = set(lab["key_studies"]) | set(lab["trap_studies"])
        if unknown - studies:
            sys.exit(f"{labels}: {q['id']} names studies the corpus lacks: {sorted(unknown - studies)}")
        rows.append({"id": q["id"], "question": q["question"], "style": q["style"], "expect": lab["expect"],
                     "question_type": lab["question_type"], "verdict": lab["verdict"] if lab["verdict"] not in (None, "null") else "none",
                     "key_studies": lab["key_studies"], "trap_studies": lab["trap_studies"],
                     "gold_bottom_line": lab["gold_bottom_line"], "label_note": lab.get("label_note", ""),
                     "writer_note": q.get("writer_note", ""), "split": "frozen", "history": [], "set": name})
    write_jsonl(path, rows)
    print(f"{path}: {len(rows)} questions, {sum(r['split'] == 'frozen' for r in rows)} frozen ({name})")


def merge_verifier(files: list[Path]) -> None:
    """Cases go to evals/llm_cases.json, sentences (with the labeller's label) to evals/llm_verifier.jsonl.
    The labeller saw the sentences shuffled within each case under opaque ids; KEY.json maps each id to
    the sentence's line in the writer's file."""
    cases_path, lines_path = ROOT / "evals" / "llm_cases.json", ROOT / "evals" / "llm_verifier.jsonl"
    cases, lines = json.loads(cases_path.read_text(encoding="utf-8")), read_jsonl(lines_path)
    for cases_file, sentences_file, labels_file, key_file in zip(*[iter(files)] * 4):
        new = json.loads(cases_file.read_text(encoding="utf-8"))
        questions = {c["case"]: c["question"] for c in new}
        key = json.loads(key_file.read_text(encoding="utf-8"))
        labels = {key[lab["id"]]: lab for lab in read_jsonl(labels_file)}
        sentences = read_jsonl(sentences_file)
        if sorted(labels) != list(range(len(sentences))):
            sys.exit(f"{labels_file}: {len(labels)} labels for {len(sentences)} sentences, or ids outside {key_file}")
        for n, s in enumerate(sentences):
            lab = labels[n]
            lines.append({"case": s["case"], "question": questions[s["case"]], "part": s["part"], "label": lab["label"],
                          "kind": s["kind"], "sentence": s["sentence"], "note": s.get("note", ""),
                          "label_note": lab.get("label_note", "")})
        cases.extend(new)
    cases_path.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    write_jsonl(lines_path, lines)
    print(f"{cases_path}: {len(cases)} cases; {lines_path}: {len(lines)} sentences")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["safety", "patients", "verifier"])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--set", default="", help="the patients round's name (P25)")
    args = parser.parse_args()
    if args.kind == "safety":
        merge_safety(*args.files)
    elif args.kind == "patients":
        merge_patients(*args.files, args.set)
    else:
        merge_verifier(args.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
