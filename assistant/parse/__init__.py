"""Stage 1, parse: corpus files of any supported format into Study objects, with every problem
reported (file, line, what is wrong) and nothing dropped silently."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..study import Role, Study, study_id
from .atlas import looks_like_atlas, parse_atlas
from .markdown import parse_markdown
from .limits import LimitError, max_file_bytes, size_problem
from .problems import ParseError, Problem, decode
from .pubmed import parse_medline, parse_pubmed_json

SUFFIXES = {".txt", ".md", ".nbib", ".json", ".jsonl", ".bib"}
# Metadata a merge may fill in from the other record of the same study.
MERGED_FIELDS = ["pmid", "doi", "url", "journal", "year", "authors"]


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
    """Files to read, folders expanded (sorted, so ids and order are stable). Every path that is not
    read is reported: a broken link, a FIFO or other special file, a link to a folder (not followed,
    so a loop cannot run forever); only files of other kinds inside a folder (.pdf, a README) are
    passed over without a word."""
    files, problems = [], []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for folder, dirs, names in os.walk(path, followlinks=False):
                dirs.sort()
                base = Path(folder)
                for name in sorted(dirs):
                    if (base / name).is_symlink():
                        problems.append(Problem(str(base / name), None, "link to a folder: not followed; "
                                                "give the folder itself to read it"))
                for name in sorted(names):
                    file = base / name
                    if name.lower() == "readme.md":  # a folder's README describes the corpus; not a study
                        continue
                    if file.suffix.lower() not in SUFFIXES:
                        continue
                    problem = _not_readable(file)
                    if problem:
                        problems.append(problem)
                    else:
                        files.append(file)
        elif path.is_dir():
            files_in, found = corpus_files([path.resolve()])
            files += files_in
            problems += found
        elif path.exists() or path.is_symlink():
            problem = _not_readable(path)
            if problem:
                problems.append(problem)
            else:
                files.append(path)
        else:
            problems.append(Problem(str(path), None, "no such file or folder"))
    return files, problems


def _not_readable(path: Path) -> Problem | None:
    """Why a path that looks like a corpus file cannot be read as one, or None."""
    if path.is_symlink() and not path.exists():
        return Problem(str(path), None, "broken link: its target does not exist")
    if not path.is_file():
        kind = ("FIFO" if path.is_fifo() else "socket" if path.is_socket() else
                "device" if path.is_block_device() or path.is_char_device() else "not a regular file")
        return Problem(str(path), None, f"not a regular file ({kind}): expected a text file")
    return None


def read_file(path: Path, max_bytes: int | None = None) -> tuple[list[Study], list[Problem]]:
    """All studies in one file, and its problems. The format is read from the content, not the
    name. A single-study file with an error yields no study; in a multi-record file (PubMed) only
    the bad records are skipped. A file over the size limit is not read at all."""
    file = str(path)
    try:
        too_big = size_problem(path.stat().st_size, max_bytes or max_file_bytes())
        if too_big:
            return [], [Problem(file, None, too_big)]
        text = decode(path.read_bytes(), file)
        records = _parse(text, file)
    except ParseError as err:
        return [], [err.problem]
    except LimitError as err:
        return [], [Problem(file, None, str(err))]
    except OSError as err:
        return [], [Problem(file, None, f"cannot read file: {err.strerror}")]
    except (ValueError, RecursionError, TypeError, AttributeError, IndexError, KeyError) as err:
        # A parser bug or a pathological file must cost one entry, never the whole corpus.
        return [], [Problem(file, None, f"cannot parse this file ({type(err).__name__}: {err})")]
    studies, problems = [], []
    for study, found in records:
        problems += found
        if study is not None and not any(p.severity == "error" for p in found):
            studies.append(study)
    return studies, problems


def _parse(text: str, file: str) -> list[tuple[Study | None, list[Problem]]]:
    """Dispatch on what the text looks like: front matter (or '## ' headings, so a summary that lost
    its front matter is reported as such), MEDLINE tags, JSON, else an atlas entry."""
    if text.splitlines()[0].strip() == "---" or re.search(r"^## \S", text, re.M):
        return [parse_markdown(text, file)]
    if re.search(r"^PMID- ", text, re.M):
        return parse_medline(text, file)
    if text.lstrip()[:1] in ("[", "{"):
        return parse_pubmed_json(text, file)
    from .bibtex import looks_like_bibtex, parse_bibtex  # bibtexparser loads only for reading files

    if looks_like_bibtex(text):
        return parse_bibtex(text, file)
    if not looks_like_atlas(text):
        raise ParseError(Problem(file, 1, "unknown format: expected an atlas entry (title, "
                                 "'Authors · Journal · Year · DOI' byline, section headings)"))
    return [parse_atlas(text, file)]


def load_corpus(paths: list[Path], max_bytes: int | None = None) -> CorpusLoad:
    """Every study of every file. The same study read twice in one format is an error (one copy is
    enough); the same study in two formats (same DOI or PMID) is merged, since each format knows
    different things (an atlas entry its roles, a PubMed record its PMID). `max_bytes` is the per-file
    size limit (setting max_file_bytes; by default read from the settings)."""
    files, problems = corpus_files(paths)
    load = CorpusLoad(problems=problems, files=len(files))
    limit = max_bytes or max_file_bytes()
    formats: list[set[str]] = []  # formats each kept study was read in: a second copy in one is a duplicate
    for path in files:
        studies, found = read_file(path, limit)
        load.problems += found
        for study in studies:
            i = _same_study(load.studies, study)
            if i is None:
                load.studies.append(study)
                formats.append({study.source_format})
            elif study.source_format in formats[i] or not _shares_identifier(load.studies[i], study):
                load.problems.append(Problem(study.source_path, _line(study), f"duplicate study "
                                             f"{study.id}: already read from {load.studies[i].source_path}"))
            else:
                first = load.studies[i]
                load.studies[i] = _merge(first, study)
                formats[i].add(study.source_format)
                load.problems.append(Problem(study.source_path, _line(study), f"merged with "
                                             f"{first.source_path}: the same study ({study.id}) in another "
                                             f"format; kept the {load.studies[i].source_format} sections",
                                             "warning"))
    return load


def _same_study(studies: list[Study], study: Study) -> int | None:
    return next((i for i, s in enumerate(studies) if s.id == study.id or _shares_identifier(s, study)), None)


def _shares_identifier(a: Study, b: Study) -> bool:
    return bool((a.doi and a.doi == b.doi) or (a.pmid and a.pmid == b.pmid))


def _merge(first: Study, other: Study) -> Study:
    """One study from two records: the atlas entry's sections (written for this project, with every
    role) when there is one, else the record with more of the study's own text (an abstract beats a
    metadata-only BibTeX entry), else the first read; metadata it lacks comes from the other record."""
    kept, donor = (other, first) if _evidence(other) > _evidence(first) else (first, other)
    for name in MERGED_FIELDS:
        if not getattr(kept, name) and getattr(donor, name):
            setattr(kept, name, getattr(donor, name))
            if name == "authors":
                kept.et_al = donor.et_al
    kept.id = study_id(kept.doi, kept.pmid, kept.authors, kept.year, kept.title)
    return kept


def _evidence(study: Study) -> tuple[bool, bool]:
    own = [s for s in study.sections if not s.generated]
    return (study.source_format == "atlas",
            any(s.role in (Role.OBSERVED, Role.INFERRED, Role.NOT_PROVEN) for s in own))


def _line(study: Study) -> int:
    """Line 1 of a one-study file; in a PubMed file, the record's first line (its sections carry it)."""
    if study.source_format in ("atlas", "markdown"):
        return 1
    if study.__dict__.get("_reading") is not None and study.__dict__["_reading"].line:
        return study.__dict__["_reading"].line
    return min((s.line for s in study.sections if s.line), default=1)


__all__ = ["CorpusLoad", "Problem", "ParseError", "load_corpus", "read_file", "corpus_files"]
