"""Measuring import fidelity (evals/roles.jsonl, evals/study_labels.jsonl, labelled by a reader who never
saw the parsers): sentence-role accuracy, `observed` precision, study type and PEM accuracy."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .inspect import inspect_paths


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _records(shared: Path, sources: set[str]) -> dict[str, dict | None]:
    """Parsed records by label source ('summaries/x.md' or 'pubmed:123'); a source the importer refused
    (with its error, e.g. a summary with no known headings) maps to None."""
    out: dict[str, dict | None] = {}
    files = sorted({shared / s for s in sources if not s.startswith("pubmed:")})
    records, problems = inspect_paths([f for f in files if f.is_file()])
    out.update({str(Path(p.file).relative_to(shared)): None for p in problems
                if p.severity == "error" and shared in Path(p.file).parents})
    for r in records:
        out[str(Path(r["source_path"]).relative_to(shared)) if shared in Path(r["source_path"]).parents else r["source_path"]] = r
    if any(s.startswith("pubmed:") for s in sources):
        pubmed, _ = inspect_paths([shared / "pubmed" / "records.json"])
        out.update({f"pubmed:{r['pmid']}": r for r in pubmed if r.get("pmid")})
    return out


def score_roles(labels: list[dict], shared: Path) -> dict:
    records = _records(shared, {lab["source"] for lab in labels})
    matched, correct, said_observed, right_observed, misses = 0, 0, 0, 0, []
    for label in labels:
        record = records.get(label["source"])
        got = None
        if record:
            want = _key(label["sentence"])
            got = next((s["role"] for s in record["sentences"] if want and (want in _key(s["text"]) or _key(s["text"]) in want and len(_key(s["text"])) > 20)), None)
        if got is None:
            continue
        matched += 1
        correct += got == label["role"]
        said_observed += got == "observed"
        right_observed += got == "observed" and label["role"] == "observed"
        if got != label["role"]:
            misses.append({"source": label["source"], "sentence": label["sentence"], "gold": label["role"], "got": got})
    return {"summary": {"labelled": len(labels), "matched": matched, "refused": _refused(labels, records),
                        "role_accuracy": round(correct / matched, 4) if matched else None,
                        "observed_precision": round(right_observed / said_observed, 4) if said_observed else None},
            "misses": misses}


def score_studies(labels: list[dict], shared: Path) -> dict:
    records = _records(shared, {lab["source"] for lab in labels})
    found = [(lab, record) for lab in labels if (record := records.get(lab["source"]))]
    type_ok = [lab for lab, r in found if r["study_type"] == lab["study_type"]]
    pem_ok = [lab for lab, r in found if r["pem"] == lab["pem"]]
    share = lambda part: round(len(part) / len(found), 4) if found else None  # noqa: E731
    return {"summary": {"labelled": len(labels), "matched": len(found), "refused": _refused(labels, records),
                        "study_type_accuracy": share(type_ok),
                        "pem_accuracy": share(pem_ok)},
            "misses": [{"source": lab["source"], "gold": [lab["study_type"], lab["pem"]], "got": [r["study_type"], r["pem"]]}
                       for lab, r in found if (r["study_type"], r["pem"]) != (lab["study_type"], lab["pem"])]}


def _refused(labels: list[dict], records: dict) -> int:
    """Labels whose source the importer refused with an error (counted, not scored)."""
    return sum(lab["source"] in records and records[lab["source"]] is None for lab in labels)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
