"""Parser for the ME/CFS atlas page text (the format of shared/data/000_….txt)."""
from __future__ import annotations

import difflib
import re

from ..study import (DOI_PATTERN, Pem, Role, Section, Study, normalise_doi, normalise_study_type,
                     study_id)
from .design import infer_study_type_with_reason
from .problems import ParseError, Problem
from .roles import reading_of

HEADINGS = {
    "Quick Summary": Role.SUMMARY,
    "Why It Matters": Role.CONTEXT,
    "Observed Findings": Role.OBSERVED,
    "Inferred Conclusions": Role.INFERRED,
    "Remaining Questions": Role.OPEN_QUESTION,
    "What This Study Does Not Prove": Role.NOT_PROVEN,
}
LIST_ROLES = {Role.OBSERVED, Role.INFERRED, Role.OPEN_QUESTION}
PAGE_TITLE_SUFFIX = re.compile(r"\s+[—–-]\s+CFSMEATLAS\s*$")
FOOTNOTE = "About the PEM badge"
BYLINE_SEPARATOR = " · "


def looks_like_atlas(text: str) -> bool:
    lines = {line.strip() for line in text.splitlines()}
    return any(h in lines for h in HEADINGS) or any(_near_heading(line) for line in lines if line)


def parse_atlas(text: str, file: str) -> tuple[Study, list[Problem]]:
    """Parse one entry. Raises ParseError for a fatal problem; returns the study and every other
    problem found (errors make callers skip the entry, warnings do not)."""
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    lines = _drop_footnote(lines)
    if not lines:
        raise ParseError(Problem(file, None, "empty file: expected a study entry"))
    problems: list[Problem] = []
    title_line, title, rest = _title(lines, file)
    byline_no, byline, rest = _byline(rest, file, title_line)
    authors, et_al, journal, year, doi = _parse_byline(byline, file, byline_no, problems)
    meta, rest = _metadata(rest)
    sections = _sections(rest, file, problems)
    if not sections:
        raise ParseError(Problem(file, byline_no + 1, "no sections: expected headings such as "
                                 "'Quick Summary' and 'Observed Findings'"))
    study = Study(
        id=study_id(doi, None, authors, year, title), title=title, authors=authors, et_al=et_al,
        journal=journal, year=year, doi=doi, pem=meta.get("pem", Pem.UNKNOWN),
        participants=meta.get("participants"), retracted=meta.get("retracted", False),
        source_path=file, source_format="atlas", sections=sections, study_type="other")
    reading = reading_of(study)
    for section in sections:
        for item in section.items:
            reading.add(item, section.role, f"atlas section '{section.heading}'")
    if meta.get("study_type"):
        study.study_type, reading.study_type_reason = meta["study_type"], "the entry's 'Study type:' line"
    else:
        study.study_type, reading.study_type_reason = infer_study_type_with_reason(study)
    reading.pem_reason = ({Pem.REQUIRED: "the entry's 'PEM required' badge",
                           Pem.NOT_REQUIRED: "the entry's 'PEM not required' badge"}.get(study.pem)
                          or "the entry has no PEM badge")
    return study, problems


def _drop_footnote(lines):
    for i, (_, line) in enumerate(lines):
        if line.startswith(FOOTNOTE):
            return lines[:i]
    return lines


def _title(lines, file):
    n, first = lines[0]
    if PAGE_TITLE_SUFFIX.search(first):
        lines = lines[1:]
        if not lines:
            raise ParseError(Problem(file, n, "no title: only a page-title line was found"))
        n, first = lines[0]
    if first in HEADINGS or BYLINE_SEPARATOR in first:
        raise ParseError(Problem(file, n, f"no title: the entry starts with '{first[:60]}'; expected "
                                 "the study title on its own line"))
    return n, first, lines[1:]


def _byline(lines, file, title_line):
    if not lines or BYLINE_SEPARATOR not in lines[0][1]:
        n = lines[0][0] if lines else title_line + 1
        raise ParseError(Problem(file, n, "missing byline: expected 'Authors · Journal · Year · DOI' "
                                 "on the line after the title"))
    return lines[0][0], lines[0][1], lines[1:]


def _parse_byline(byline, file, n, problems):
    parts = [p.strip() for p in byline.split(BYLINE_SEPARATOR)]
    doi = None
    if parts[-1].upper().startswith("DOI") or "doi.org" in parts[-1] or DOI_PATTERN.search(parts[-1]):
        doi = normalise_doi(parts.pop())
    year = None
    if len(parts) >= 2 and re.fullmatch(r"\S{4}", parts[-1]) and not parts[-1].isalpha():
        year = _year(parts.pop(), file, n, problems)
    elif len(parts) >= 2 and re.fullmatch(r"\d+", parts[-1]):
        year = _year(parts.pop(), file, n, problems)
    else:
        problems.append(Problem(file, n, "byline has no year: expected 'Authors · Journal · Year · DOI'",
                                "warning"))
    authors, et_al = parse_authors(parts[0])
    journal = " · ".join(parts[1:]) or None
    return authors, et_al, journal, year, doi


def _year(text, file, n, problems):
    if re.fullmatch(r"(19|20)\d\d", text):
        return int(text)
    problems.append(Problem(file, n, f"year '{text}' is not a year: expected four digits such as 2013"))
    return None


def parse_authors(text: str) -> tuple[list[str], bool]:
    """'Meeus, Mira, Nijs, Jo et al.' -> (['Meeus, Mira', 'Nijs, Jo'], True)."""
    et_al = bool(re.search(r",?\s*et al\.?$", text))
    text = re.sub(r",?\s*et al\.?$", "", text).strip()
    names = [p.strip() for p in text.split(",") if p.strip()]
    if len(names) % 2 == 0 and all(" " not in n or len(n.split()) <= 3 for n in names[::2]):
        return [f"{names[i]}, {names[i + 1]}" for i in range(0, len(names), 2)], et_al
    return names, et_al


def _metadata(lines):
    """Badge and 'Key: value' lines between the byline and the first section heading."""
    meta: dict = {}
    i = 0
    for i, (n, line) in enumerate(lines):
        key, _, value = (part.strip() for part in line.partition(":"))
        if line.lower() in ("pem required", "pem not required"):
            meta["pem"] = Pem.REQUIRED if line.lower() == "pem required" else Pem.NOT_REQUIRED
        elif key.lower() == "study type" and normalise_study_type(value):
            meta["study_type"] = normalise_study_type(value)
        elif key.lower() == "participants" and value:
            meta["participants"] = value
        elif key.lower() == "retracted" and value:
            meta["retracted"] = value.lower() in ("yes", "true")
        else:
            return meta, lines[i:]
    return meta, []


def _sections(lines, file, problems):
    sections: list[Section] = []
    current: Section | None = None
    skipping = False  # inside the body of an unknown heading: its lines belong to no section
    for n, line in lines:
        if line in HEADINGS:
            if any(s.heading == line for s in sections):
                problems.append(Problem(file, n, f"duplicate section '{line}': each heading may appear once"))
            current, skipping = Section(heading=line, role=HEADINGS[line], items=[], line=n), False
            sections.append(current)
        elif _near_heading(line) or (current is None and not skipping) or _bare_heading(current, line):
            problems.append(_heading_problem(file, n, line))
            current, skipping = None, True
        elif current is not None:
            current.items.append(line)
    for s in sections:
        if not s.items:
            problems.append(Problem(file, s.line, f"empty section '{s.heading}': expected at least one "
                                    + ("item, one per line" if s.role in LIST_ROLES else "paragraph")))
    return [s for s in sections if s.items]


def _bare_heading(section: Section | None, line: str) -> bool:
    """A short unpunctuated line inside a prose section is a heading we do not know, not prose."""
    return (section is not None and section.role not in LIST_ROLES and len(line.split()) <= 6
            and line[-1] not in ".?!:;,)\"'”")


def _near_heading(line: str) -> str | None:
    """The known heading a short, unpunctuated line most likely misspells, if any."""
    if len(line.split()) > 7 or line[-1] in ".?!:;,)" or not line[0].isupper():
        return None
    match = difflib.get_close_matches(line.title(), list(HEADINGS), n=1, cutoff=0.75)
    return match[0] if match else None


def _heading_problem(file, n, line):
    closest = _near_heading(line) or difflib.get_close_matches(line, list(HEADINGS), n=1, cutoff=0.0)[0]
    return Problem(file, n, f"unknown section heading '{line[:60]}': expected one of the atlas "
                   f"headings; the closest is '{closest}'")
