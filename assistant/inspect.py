"""How each file was read (`atlas-assistant inspect PATH ... [--json]`): metadata, study type and PEM
criterion with their reasons, and every sentence with its role and why, in reading order.

Each file is read on its own (no merging across files), so what is shown is what that file says."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from .parse import corpus_files, read_file
from .parse.problems import Problem
from .parse.roles import reading_of
from .study import Study


def inspect_paths(paths: list[Path], max_bytes: int | None = None) -> tuple[list[dict], list[Problem]]:
    """One record per study of every file (files in the order given, folders sorted), and the
    problems found while reading them. `max_bytes`: the per-file size limit (setting max_file_bytes)."""
    files, problems = corpus_files(paths)
    records = []
    for path in files:
        studies, found = read_file(path, max_bytes)
        problems += found
        records += [study_record(s) for s in studies]
    return records, problems


def study_record(study: Study) -> dict:
    reading = reading_of(study)
    return {
        "study_id": study.id, "source_path": study.source_path, "source_format": study.source_format,
        "doi": study.doi, "pmid": study.pmid, "title": study.title, "year": study.year,
        "study_type": study.study_type, "study_type_reason": reading.study_type_reason,
        "pem": study.pem.value, "pem_reason": reading.pem_reason,
        "sentences": [{"text": s.text, "role": s.role.value, "why": s.why} for s in reading.sentences],
        "authors": study.authors, "journal": study.journal, "url": study.url,
        # caveats the program adds from the design: not the file's words, so not among its sentences
        "generated_caveats": [i for s in study.sections if s.generated for i in s.items],
        "notes": reading.notes,
    }


def render(record: dict, width: int = 100) -> str:
    """The record for people: metadata, then each sentence under its role with its reason."""
    def wrap(text: str, indent: str, hang: int = 14) -> str:
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=" " * hang)

    lines = [f"{record['source_path']} ({record['source_format']})",
             f"  id:         {record['study_id']}", wrap(record["title"], "  title:      ")]
    for key in ("authors", "journal", "year", "doi", "pmid", "url"):
        value = record[key]
        if value:
            value = ", ".join(value) if isinstance(value, list) else value
            lines.append(wrap(f"{key + ':':<11} {value}", "  "))
    lines.append(wrap(f"study type: {record['study_type']} (why: {record['study_type_reason'] or '-'})", "  "))
    lines.append(wrap(f"PEM:        {record['pem']} (why: {record['pem_reason'] or '-'})", "  "))
    lines.append(f"  sentences:  {len(record['sentences'])}")
    for n, sentence in enumerate(record["sentences"], start=1):
        lines.append(wrap(f"{n:>3}. [{sentence['role']}] {sentence['text']}", "  ", 7))
        lines.append(wrap(f"why: {sentence['why']}", "       ", 12))
    for note in record["notes"]:
        lines.append(wrap(f"note: {note}", "  "))
    for caveat in record["generated_caveats"]:
        lines.append(wrap(f"[not_proven, generated from the design, not the file's words] {caveat}", "  ", 7))
    return "\n".join(lines)


def as_json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)
