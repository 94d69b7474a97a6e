"""Stage 1, parse: corpus files of any supported format into Study objects, with every problem
reported (file, line, what is wrong) and nothing dropped silently."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..study import Study
from .atlas import looks_like_atlas, parse_atlas
from .problems import ParseError, Problem, decode

SUFFIXES = {".txt"}


@dataclass
class CorpusLoad:
    studies: list[Study] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def skipped(self) -> list[dict]:
        return [p.as_skip() for p in self.errors]


def corpus_files(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    """Files to read, folders expanded (sorted, so ids and order are stable)."""
    files, problems = [], []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), None, "no such file or folder"))
    return files, problems


def read_file(path: Path) -> tuple[list[Study], list[Problem]]:
    """All studies in one file, and its problems. A file with an error yields no study."""
    file = str(path)
    try:
        text = decode(path.read_bytes(), file)
        if not looks_like_atlas(text):
            raise ParseError(Problem(file, 1, "unknown format: expected an atlas entry (title, "
                                     "'Authors · Journal · Year · DOI' byline, section headings)"))
        study, problems = parse_atlas(text, file)
    except ParseError as err:
        return [], [err.problem]
    except OSError as err:
        return [], [Problem(file, None, f"cannot read file: {err.strerror}")]
    if any(p.severity == "error" for p in problems):
        return [], problems
    return [study], problems


def load_corpus(paths: list[Path]) -> CorpusLoad:
    files, problems = corpus_files(paths)
    load = CorpusLoad(problems=problems, files=len(files))
    seen: dict[str, Study] = {}
    for path in files:
        studies, found = read_file(path)
        load.problems += found
        for study in studies:
            first = seen.get(study.id)
            if first:
                load.problems.append(Problem(study.source_path, 1, f"duplicate study {study.id}: "
                                             f"already read from {first.source_path}"))
                continue
            seen[study.id] = study
            load.studies.append(study)
    return load


__all__ = ["CorpusLoad", "Problem", "ParseError", "load_corpus", "read_file", "corpus_files"]
