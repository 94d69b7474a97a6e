"""Parser for BibTeX exports (Zotero, Mendeley, JabRef; ../shared/data/bibliography/*.bib), through
bibtexparser 2.

An entry with an abstract becomes a study whose abstract sentences get roles as a PubMed abstract's
do. An entry with only a title, keywords or a note is a metadata-only study: its keywords are
context, and nothing of it can ever be quoted as a finding. A `note` is a reader's summary (a third
party's words, not the study's), so it is never read into the study at all. PMID and DOI are kept."""
from __future__ import annotations

import logging
import re

import bibtexparser
from bibtexparser.model import DuplicateBlockKeyBlock, ParsingFailedBlock

from ..study import Pem, Role, Section, Study, normalise_doi, study_id
from .markdown import finish, year_of
from .problems import Problem
from .pubmed import abstract_sections
from .roles import Reading, cues, quote, reading_of

Record = tuple[Study | None, list[Problem]]
logging.getLogger("bibtexparser").setLevel(logging.ERROR)  # failed blocks are reported as problems

ENTRY = re.compile(r"^[ \t]{0,8}@[A-Za-z]{1,30}[ \t]{0,8}[{(]", re.M)
# Entry types that say what the text is: the type decides before any inference from the title.
ENTRY_TYPES = {"review": ("review", "entry type '@review'")}
NOT_A_STUDY = {"misc", "online", "electronic", "www", "unpublished"}
LATEX_ACCENT = re.compile(r"\\[`'^\"~=.uvHckbdr]\s?\{?([A-Za-z])\}?")
LATEX_LETTER = {r"\O": "Ø", r"\o": "ø", r"\ss": "ß", r"\ae": "æ", r"\AE": "Æ", r"\aa": "å", r"\AA": "Å",
                r"\l": "ł", r"\L": "Ł", r"\i": "ı", r"\oe": "œ", r"\OE": "Œ"}
COMBINING = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
             ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328",
             "b": "\u0331", "d": "\u0323", "r": "\u030a"}


def looks_like_bibtex(text: str) -> bool:
    return bool(ENTRY.search(text))


def parse_bibtex(text: str, file: str) -> list[Record]:
    library = bibtexparser.parse_string(text)
    records: list[tuple[int, Record]] = []
    for block in library.failed_blocks:
        line = (block.start_line or 0) + 1
        if isinstance(block, DuplicateBlockKeyBlock):
            reason = f"duplicate entry key '{block.key}': each entry needs its own key"
        elif isinstance(block, ParsingFailedBlock):
            raw = (block.raw or "").strip().splitlines()[0][:60] if (block.raw or "").strip() else ""
            reason = (f"entry '{raw}' cannot be read: {block.error or 'unbalanced braces or a missing comma'}; "
                      "expected '@type{key, field = {value}, …}'")
        else:
            reason = f"block cannot be read: {getattr(block, 'error', '') or type(block).__name__}"
        records.append((line, (None, [Problem(file, line, reason)])))
    for entry in library.entries:
        line = (entry.start_line or 0) + 1
        records.append((line, _entry(entry, file, line)))
    if not records:
        return [(None, [Problem(file, 1, "no entries: expected BibTeX entries such as '@article{key, …}'")])]
    return [record for _, record in sorted(records, key=lambda r: r[0])]


def _entry(entry, file: str, line: int) -> Record:
    fields = {k.lower(): _plain(str(f.value)) for k, f in entry.fields_dict.items()}
    title = fields.get("title", "").strip()
    if not title:
        return None, [Problem(file, line, f"entry '{entry.key}' has no title: expected 'title = {{…}}'")]
    authors = [_name(a) for a in re.split(r"\s+and\s+", fields.get("author", "")) if a.strip()]
    et_al = bool(authors) and authors[-1].lower() in ("others", "et al", "et al.")
    authors = [a for a in authors if a.lower() not in ("others", "et al", "et al.")]
    doi = normalise_doi(fields.get("doi")) or (normalise_doi(fields.get("url")) if "doi.org" in
                                               fields.get("url", "") else None)
    pmid = fields.get("pmid", "").strip() or None
    pmid = pmid if pmid and pmid.isdigit() else None
    year = year_of(fields.get("year"))
    reading = Reading(line=line)
    abstract = fields.get("abstract", "").strip()
    if abstract:
        sections = abstract_sections(abstract, line, reading)
    else:
        sections = []
        keywords = fields.get("keywords", "").strip()
        if keywords:
            sections.append(Section(heading="Keywords (metadata only: no abstract)", role=Role.CONTEXT,
                                    items=[f"Keywords: {keywords}"], line=line))
            reading.add(sections[-1].items[0], Role.CONTEXT, "the entry's keywords: metadata, not a finding")
    if "note" in fields:
        reading.notes.append("field 'note' not read: a reader's summary, a third party's words, not the study's")
    if not abstract:
        reading.notes.append("metadata-only study: no abstract, so nothing of it can be quoted as a finding")
    url = fields.get("url") if not doi and re.match(r"https?://", fields.get("url", "")) else None
    study = Study(id=study_id(doi, pmid, authors, year, title), title=title, authors=authors, et_al=et_al,
                  journal=fields.get("journal") or fields.get("booktitle") or fields.get("publisher") or None,
                  year=year, doi=doi, pmid=pmid, url=url, source_path=file, source_format="bibtex",
                  sections=sections)
    study.__dict__["_reading"] = reading
    kind, reason = ENTRY_TYPES.get(entry.entry_type.lower(), ("other", ""))
    study.study_type = kind
    tags = [k.strip() for k in fields.get("keywords", "").split(",") if k.strip()]
    finish(study, publication_types=[entry.entry_type] if entry.entry_type.lower() in NOT_A_STUDY else [],
           tags=tags, type_reason=reason)
    if fields.get("diagnostic_criteria"):
        study.pem, reading_of(study).pem_reason = pem_from_criteria(fields["diagnostic_criteria"])
    return study, []


def pem_from_criteria(value: str) -> tuple[Pem, str]:
    """The PEM criterion from a `diagnostic_criteria` field: one definition that requires PEM ->
    required; only older ones -> not_required; several, or none known -> unknown."""
    said = f"field diagnostic_criteria = '{value}'"
    parts = [p.strip() for p in re.split(r",|;|/|\band\b", re.sub(r"\(.*?\)", "", value)) if p.strip()]
    strict = [p for p in parts if cues("pem", "required").find(p) or re.fullmatch(r"(IOM|NAM|SEID)", p, re.I)]
    older = [p for p in parts if cues("pem", "not_required").find(p) or re.fullmatch(r"CDC([- ]\d{4})?", p, re.I)]
    if strict and not older and len(parts) == 1:
        return Pem.REQUIRED, f"{said}: {quote(strict[0])} requires PEM"
    if older and not strict and len(parts) == len(older):
        return Pem.NOT_REQUIRED, f"{said}: {quote(older[0])} does not require PEM"
    if strict:
        return Pem.UNKNOWN, f"{said}: several definitions, and not which one all participants met"
    return Pem.UNKNOWN, f"{said}: not a definition that says whether PEM was required"


def _plain(value: str) -> str:
    """BibTeX text as plain text: accents and letters decoded, braces and escapes removed."""
    if "\\" in value:
        for macro, letter in LATEX_LETTER.items():
            value = re.sub(r"\{?" + re.escape(macro) + r"(?![A-Za-z])\}?", letter, value)
        value = LATEX_ACCENT.sub(lambda m: _accent(m.group(0), m.group(1)), value)
        value = value.replace("\\%", "%").replace("\\&", "&").replace("\\_", "_").replace("\\$", "$")
    value = value.replace("{", "").replace("}", "").replace("---", "—").replace("--", "–")
    return re.sub(r"\s+", " ", value).strip()


def _accent(macro: str, letter: str) -> str:
    import unicodedata

    mark = COMBINING.get(macro[1], "")
    return unicodedata.normalize("NFC", letter + mark)


def _name(name: str) -> str:
    """'Davenport, Todd E.' stays; 'Todd E. Davenport' becomes 'Davenport, Todd E.'."""
    from .markdown import person_name

    name = name.strip()
    return name if "," in name else person_name(name)
