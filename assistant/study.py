"""The study model: what every corpus format is parsed into, and what the index and answers use."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """The evidence role of a section. Answers never move text across roles."""

    SUMMARY = "summary"
    CONTEXT = "context"
    METHODS = "methods"
    OBSERVED = "observed"
    INFERRED = "inferred"
    OPEN_QUESTION = "open_question"
    NOT_PROVEN = "not_proven"


class Pem(StrEnum):
    REQUIRED = "required"
    NOT_REQUIRED = "not_required"
    UNKNOWN = "unknown"


# Canonical study types and the words people write for them (the entry's `Study type:` line).
STUDY_TYPES = {
    "review": "Review",
    "systematic-review": "Systematic review",
    "rct": "Randomised controlled trial",
    "non-randomised-trial": "Non-randomised trial",
    "cohort": "Cohort",
    "case-control": "Case-control",
    "cross-sectional": "Cross-sectional",
    "case-report": "Case report",
    "in-vitro": "In vitro",
    "animal": "Animal",
    "protocol": "Protocol",
    "guideline": "Guideline",
    "other": "Other",
}


def normalise_study_type(text: str) -> str | None:
    """Map a written study type ('Randomized controlled trial', 'in-vitro', 'RCT') to its key."""
    key = re.sub(r"[^a-z]+", "-", text.lower().replace("randomized", "randomised")).strip("-")
    if key in STUDY_TYPES:
        return key
    for canonical, label in STUDY_TYPES.items():
        if key == re.sub(r"[^a-z]+", "-", label.lower()).strip("-"):
            return canonical
    return None


@dataclass
class Section:
    heading: str
    role: Role
    items: list[str]  # list sections: one item per line; prose sections: one paragraph per entry
    line: int | None = None  # line of the heading in the source file
    generated: bool = False  # True only for design-based caveats that no source states


@dataclass
class Study:
    id: str
    title: str
    authors: list[str] = field(default_factory=list)
    et_al: bool = False
    journal: str | None = None
    year: int | None = None
    doi: str | None = None
    pmid: str | None = None
    url: str | None = None
    pem: Pem = Pem.UNKNOWN
    study_type: str = "other"
    participants: str | None = None
    retracted: bool = False
    source_path: str = ""
    source_format: str = "atlas"
    sections: list[Section] = field(default_factory=list)

    def items(self, role: Role) -> list[str]:
        return [item for s in self.sections if s.role == role for item in s.items]

    def section(self, role: Role) -> Section | None:
        return next((s for s in self.sections if s.role == role), None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Study:
        sections = [Section(**{**s, "role": Role(s["role"])}) for s in data.get("sections", [])]
        return cls(**{**data, "pem": Pem(data.get("pem", "unknown")), "sections": sections})

    def short_authors(self) -> str:
        """'Meeus M, Nijs J, Hermans L, et al.' from 'Surname, Given' authors."""
        names = [_initialled(a) for a in self.authors[:3]]
        more = self.et_al or len(self.authors) > 3
        return ", ".join(names) + (", et al." if more and names else "")


def _initialled(author: str) -> str:
    surname, _, given = author.partition(", ")
    initials = "".join(part[0] for part in re.split(r"[\s.\-]+", given) if part)
    return f"{surname} {initials}".strip()


def study_id(doi: str | None, pmid: str | None, authors: list[str], year: int | None, title: str) -> str:
    """Stable id: DOI when known, else PMID, else a slug of first author, year and title."""
    if doi:
        return f"doi:{doi}"
    if pmid:
        return f"pmid:{pmid}"
    surname = authors[0].split(",")[0] if authors else "anon"
    words = re.findall(r"[a-z0-9]+", title.lower())[:6]
    return "-".join([slug(surname), str(year or "nd"), *words])


def slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


DOI_PATTERN = re.compile(r"10\.\d{4,9}/[^\s\"<>]+")
# What a DOI may be, strictly: "10." a registrant code of 4-9 digits, "/", then a suffix of letters,
# digits and - . _ ; : / ( ) + only (Crossref's recommended set, plus "+"), with balanced parentheses.
# No whitespace, quotes, brackets, backslashes or angle brackets: nothing that can end or open a
# Markdown link ("10.1234/x)](javascript:alert(1)" is refused, not cut down to "10.1234/x").
DOI_SYNTAX = re.compile(r"10\.\d{4,9}/[a-z0-9\-._;:/()+]+", re.I)


def valid_doi(doi: str | None) -> bool:
    """True only for a whole string of strict DOI syntax (see DOI_SYNTAX) with balanced parentheses."""
    if not doi or not DOI_SYNTAX.fullmatch(doi):
        return False
    depth = 0
    for char in doi:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def normalise_doi(text: str | None) -> str | None:
    """'https://doi.org/10.1/ABC.' -> '10.1/abc'; None when the text holds no DOI of strict syntax."""
    if not text:
        return None
    match = DOI_PATTERN.search(text)
    if not match:
        return None
    doi = match.group(0).rstrip(".,;]")
    while doi.endswith(")") and doi.count(")") > doi.count("("):  # a Markdown link's closing bracket
        doi = doi[:-1]
    doi = doi.rstrip(".,;")
    return doi.lower() if valid_doi(doi) else None
