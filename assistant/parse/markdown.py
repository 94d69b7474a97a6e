"""Parser for the Markdown summaries with YAML front matter (the layout of shared/data/summaries).

Also home of the sentence cues shared with the PubMed importer: which sentences of an
interpretation are open questions or stated limits, names in 'Surname, Given' form, and the PEM
criteria a study used."""
from __future__ import annotations

import difflib
from dataclasses import replace
import re

import yaml

from ..study import Pem, Role, Section, Study, normalise_doi, study_id
from .design import commentary_reason, design_caveats, infer_study_type_with_reason
from .limits import LimitError, load_front_matter
from .split import clean_residue, split_sentences as sentences
from .problems import ParseError, Problem
from .roles import Reading, content_role, cues, quote, reading_of, relearn

HEADINGS = {
    "Summary": Role.SUMMARY,
    "What was researched?": Role.CONTEXT,
    "Why was it researched?": Role.CONTEXT,
    "How was it researched?": Role.METHODS,
    "What has been found?": Role.OBSERVED,
    "Discussion": Role.INFERRED,
    "Conclusion & Future Work": Role.INFERRED,
}
KNOWN = {h.lower(): h for h in HEADINGS}
# Roles whose items are single sentences, so an answer can cite one claim; the others stay paragraphs.
SENTENCE_ROLES = {Role.OBSERVED, Role.INFERRED, Role.OPEN_QUESTION, Role.NOT_PROVEN}

# Inside an interpretation, these sentences are not conclusions: they say what is still unknown...
FORWARD = re.compile(
    r"\bfuture (work|research|studies|study|trials|investigations?)\b|\bfurther (studies|research|work|"
    r"trials|investigations?)\b[^.]{0,80}\b(needed|required|necessary|warranted)|\bmore research\b"
    r"|\bneeds? to be (confirmed|replicated|validated)|\bremains? (unclear|unknown|to be)\b"
    r"|\bwarrant(s|ed)?\b|should be (investigated|explored|examined|studied)"
    r"|\brequire[sd]? (further )?(validation|confirmation|replication)", re.I)
# ...or what the study cannot show (the authors' own limits, so not generated).
LIMITS = re.compile(
    r"\ba limitation|\blimitations?\b|\bsmall sample|cannot determine whether|was not designed to"
    r"|cannot establish|lack of (a )?control|causality cannot|\blimited by\b|cannot (prove|confirm)\b",
    re.I)
# "Despite these limitations, the study is the first to…" mentions limits without stating one.
NOT_A_LIMIT = re.compile(r"\b(despite|notwithstanding|overcom\w*|avoid\w*|address\w*|circumvent\w*|beyond)\b"
                         r"[^.]{0,40}\blimitations?\b", re.I)


def limit_cue(sentence: str) -> str | None:
    """The words that state a limit of this study, or None ('despite these limitations' states none)."""
    if NOT_A_LIMIT.search(sentence):
        return None
    match = LIMITS.search(sentence)
    return match.group(0) if match else cues("roles", "limit").find(sentence)


def is_limit(sentence: str) -> bool:
    return limit_cue(sentence) is not None


# PEM: case definitions that require post-exertional malaise, and older ones that do not. A
# required-PEM definition counts only in a sentence about who took part, not one that lists criteria.
PEM_REQUIRED = re.compile(
    r"canadian consensus criteria|\bCCC\b|international consensus criteria|\bICC\b|\bSEID\b"
    r"|\b(2015 )?(IOM|NAM|institute of medicine|national academy of medicine)( \(?2015\)?)?( diagnostic)?"
    r" (criteria|definition)", re.I)
PEM_NOT_REQUIRED = re.compile(r"\bfukuda\b|\boxford (criteria|definition)\b|\bCDC[ -]?1994\b|\b1994 CDC\b",
                              re.I)
PARTICIPANTS = re.compile(r"\b(participants?|patients?|subjects|cases|people|adults|individuals|met|meet"
                          r"|meeting|fulfill?(ed|ing)?|defined by|diagnosed|diagnosis (was )?based on"
                          r"|according to|recruited|enrolled|included)\b", re.I)

# Emoji and invisible characters the summaries sprinkle through their prose (💊 🧪 ⭐, zero-width space).
DECORATION = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u200B\uFE0F]")
BULLET = re.compile(r"^[ \t]{0,12}(?:[-*+]|\d{1,9}\.)[ \t]+")
BOLD_LABEL = re.compile(r"^[ \t]{0,12}[-*][ \t]+\*\*([^*\n]{1,200})\*\*[ \t]*:?[ \t]*(.*)$")  # '- **Authors:** …' or '- **Link**: …'
INSTITUTION = re.compile(r"\b(group|board|cent(er|re)|universit|institut|consortium|committee|hospital|"
                         r"foundation|network|society|association|council|team|collaborat|organi[sz]ation|"
                         r"agency|ministry|department|gesellschaft|sponsor)", re.I)
DEGREES = re.compile(r",?\s*\b(MD|PhD|MSc|MPH|MBBS|BSc|FRCP)\b\.?")
TITLES = re.compile(r"^(Prof\.?|Professor|Dr\.?)\s+")
PARTICLES = {"van", "von", "de", "da", "do", "dos", "das", "der", "den", "del", "della", "di", "du",
             "la", "le", "ten", "ter", "zu"}


def parse_markdown(text: str, file: str) -> tuple[Study, list[Problem]]:
    """Parse one summary. Raises ParseError for a fatal problem; returns the study and its warnings."""
    lines = text.splitlines()
    meta, body_start = _front_matter(lines, file)
    title = str(meta.get("title") or "").strip()
    if not title:
        raise ParseError(Problem(file, 1, "no title: expected 'title: …' in the front matter"))
    problems: list[Problem] = []
    facts = _details(lines[body_start:], body_start)
    authors, et_al = parse_people(facts.get("authors", ""))
    doi, url, pmid = classify_link(facts.get("link"))
    reading = Reading()
    sections = _sections(lines[body_start:], body_start, file, problems, reading)
    if not sections:
        unknown = [p.line for p in problems if p.message.startswith("unknown section heading")]
        found = f" ({len(unknown)} unknown headings, the first at line {unknown[0]})" if unknown else ""
        raise ParseError(Problem(file, body_start + 1, f"no sections{found}: expected '## ' headings such "
                                 "as '## Summary' and '## What has been found?'"))
    year = year_of(meta.get("published")) or year_of(meta.get("created"))
    study = Study(id=study_id(doi, pmid, authors, year, title), title=title, authors=authors,
                  et_al=et_al, journal=facts.get("publisher") or None, year=year, doi=doi, pmid=pmid,
                  url=url, source_path=file, source_format="markdown", sections=sections)
    study.__dict__["_reading"] = reading
    tags = meta.get("tags")
    finish(study, tags=[str(t) for t in tags] if isinstance(tags, list) else [])
    return study, problems


def finish(study: Study, publication_types: list[str] | None = None, tags: list[str] | None = None,
           type_reason: str = "") -> None:
    """What every importer derives the same way: PEM, study type (unless known) and design caveats,
    each with its reason in the study's Reading."""
    reading = reading_of(study)
    if len(reading.sentences) >= 2 and relearn(reading, abstract=study.source_format != "markdown"):
        study.sections = _resection(study.sections, reading)
    split = not reading.sentences  # the reading's sentences are split already
    own = [s.text for s in reading.sentences] or [i for s in study.sections for i in s.items]
    study.pem, reading.pem_reason = pem_with_reason([study.title, *own], split=split)
    commentary = commentary_reason(study.title, publication_types or [], tags or [])
    if commentary:
        study.study_type, reading.study_type_reason = "other", commentary
    elif study.study_type != "other" and type_reason:
        reading.study_type_reason = type_reason
    else:
        leading = [s.text for s in reading.sentences if s.role in (Role.SUMMARY, Role.METHODS)]
        study.study_type, reading.study_type_reason = infer_study_type_with_reason(
            study, None if split else [s.text for s in reading.sentences], leading)
    caveats = design_caveats(study)
    if caveats:
        study.sections.append(caveats)


ROLE_HEADINGS = {Role.SUMMARY: "Summary", Role.CONTEXT: "Background", Role.METHODS: "Methods", Role.OBSERVED: "Results",
                 Role.INFERRED: "Conclusions", Role.OPEN_QUESTION: "Open questions", Role.NOT_PROVEN: "Limitations"}
PROSE = (Role.SUMMARY, Role.CONTEXT, Role.METHODS)  # paragraphs; the other roles one item per sentence


def _resection(sections: list[Section], reading: Reading) -> list[Section]:
    """The study's sections once the learned layer moved sentences: each moved sentence leaves its
    section (a paragraph keeps its other sentences) and joins the first section of its new role, or a
    new one under a plain heading; every other section stays as the source had it."""
    moved = {s.text: s.role for s in reading.sentences if s.role != s.cue_role}
    arrived: dict[Role, list[str]] = {}
    kept_sections = []
    for section in sections:
        items = []
        for item in section.items:
            parts = sentences(item) if section.role in PROSE else [item]
            stay = [p for p in parts if p not in moved]
            for part in parts:
                if part in moved:
                    arrived.setdefault(moved[part], []).append(part)
            if stay:
                items.append(item if len(stay) == len(parts) else " ".join(stay))
        if items:
            kept_sections.append(replace(section, items=items))
    for role, texts in arrived.items():
        home = next((s for s in kept_sections if s.role == role and not s.generated), None)
        added = [" ".join(texts)] if role in PROSE else texts
        if home:
            home.items += added
        else:
            kept_sections.append(Section(heading=ROLE_HEADINGS[role], role=role, items=added,
                                         line=next((s.line for s in sections if s.line is not None), None)))
    return kept_sections


def _front_matter(lines: list[str], file: str) -> tuple[dict, int]:
    """The YAML between the first two '---' lines, and the index of the first body line."""
    if not lines or lines[0].strip() != "---":
        raise ParseError(Problem(file, 1, "no front matter: expected '---' on the first line, then "
                                 "'title: …', then '---'"))
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise ParseError(Problem(file, 1, "front matter is not closed: expected a second '---' line"))
    try:
        meta = load_front_matter("\n".join(lines[1:end])) or {}
    except LimitError as err:
        raise ParseError(Problem(file, 2, str(err))) from None
    except yaml.YAMLError as err:
        # the construct that went wrong starts at context_mark (an unclosed '['); else where it was seen
        mark = getattr(err, "context_mark", None) or getattr(err, "problem_mark", None)
        line = 2 + getattr(mark, "line", 0)
        raise ParseError(Problem(file, line, f"front matter is not valid YAML: "
                                 f"{getattr(err, 'problem', None) or err}")) from None
    if not isinstance(meta, dict):
        raise ParseError(Problem(file, 2, "front matter is not a set of 'key: value' lines"))
    return meta, end + 1


def year_of(value) -> int | None:
    """The year at the start of a date ('2025-09-16', '2025 Mar 15', 2025), else None."""
    match = re.match(r"\s*((19|20)\d\d)", str(value or ""))
    return int(match.group(1)) if match else None


def _details(lines: list[str], offset: int) -> dict[str, str]:
    """'- **Key:** value' facts (Authors, Publisher, Link), first of each, anywhere in the body:
    normally in the <details> block; trial summaries keep the Link under '## Overview'."""
    facts: dict[str, str] = {}
    for line in lines:
        match = BOLD_LABEL.match(line)
        if match and match.group(2):
            key = match.group(1).rstrip(":").strip().lower()
            facts.setdefault(key, match.group(2).strip())
    return facts


def classify_link(link: str | None) -> tuple[str | None, str | None, str | None]:
    """(doi, url, pmid) from a Link value. Only a doi.org link is a DOI, whatever its label says
    ('[DOI](https://pmc…)' is a URL); a PubMed link also gives the PMID."""
    if not link:
        return None, None, None
    link = link.strip()[:2000]  # a link is one URL; a longer value is not scanned further
    match = re.search(r"\]\((\S+)\)\s*$", link) or re.search(r"https?://\S+", link)
    if not match:
        return None, None, None
    url = (match.group(1) if match.re.groups else match.group(0)).rstrip(").,")
    if not re.match(r"https?://", url, re.I):  # a javascript: or file: link is never shown as a link
        return None, None, None
    if re.match(r"https?://(dx\.)?doi\.org/", url, re.I) and normalise_doi(url):
        return normalise_doi(url), None, None
    pmid = re.search(r"(?:pubmed\.ncbi\.nlm\.nih\.gov|ncbi\.nlm\.nih\.gov/pubmed)/(\d+)", url)
    return None, url, pmid.group(1) if pmid else None


def parse_people(text: str) -> tuple[list[str], bool]:
    """'Neil R. McGregor, Paul R. Gooley et al.' -> (['McGregor, Neil R.', 'Gooley, Paul R.'], True).
    Already inverted names ('Gil, Anna; Hoag, George E.') and institutions stay as they are."""
    text = re.sub(r"\[cite:[^\]]{0,200}\]?", "", text).strip().rstrip(".").strip()
    et_al = bool(re.search(r",?\s*et al\.?$", text))
    text = DEGREES.sub("", re.sub(r",?\s*et al\.?$", "", text))
    parts = text.split(";") if ";" in text else text.split(",")
    names = [n.strip() for part in parts for n in re.split(r"\s+(?:&|and)\s+", part)]
    return [person_name(n) for n in names if n.strip(" .")], et_al


def person_name(name: str) -> str:
    """One name in 'Surname, Given' form: 'Linda C. van Campen' -> 'van Campen, Linda C.';
    PubMed's 'Young JL' -> 'Young, J. L.'; surnames alone and institutions unchanged."""
    name = TITLES.sub("", name.strip().strip("."))
    words = name.split()
    if "," in name or len(words) < 2 or len(words) > 6 or INSTITUTION.search(name):
        return name
    if all(w.lower() in PARTICLES for w in words[:-1]):  # a surname alone: 'van Loo', 'Del Din'
        return name
    if re.fullmatch(r"[A-Z]{1,3}", words[-1]) and len(words) == 2:  # PubMed 'Surname INITIALS'
        return f"{words[0]}, {' '.join(c + '.' for c in words[1])}"
    start = len(words) - 1
    while start > 1 and words[start - 1].lower() in PARTICLES:
        start -= 1
    return f"{' '.join(words[start:])}, {' '.join(words[:start])}"


def detect_pem(text: str) -> Pem:
    return pem_with_reason([text])[0]


def pem_with_reason(texts: list[str], split: bool = True) -> tuple[Pem, str]:
    """The PEM criterion from the case definition participants met, and why. A definition that
    requires PEM (CCC, ICC, IOM/NAM 2015, 'PEM was required') in a sentence about who took part ->
    required; named beside an older one with 'or' -> unknown (not all participants met it); only
    older ones (Fukuda, Oxford, CDC 1994) -> not_required; none -> unknown."""
    parts = [s for t in texts for s in sentences(t)] if split else texts
    required, older = cues("pem", "required"), cues("pem", "not_required")
    explicit = next(((s, cue) for s in parts if (cue := required.find(s)) and "requir" in cue.lower()), None)
    if explicit:
        return Pem.REQUIRED, f"{quote(explicit[1])}: \"{_excerpt(explicit[0])}\""
    about = [(s, required.find(s), older.find(s)) for s in parts if PARTICIPANTS.search(s)]
    for sentence, strict, old in about:
        if strict and old and re.search(r"\b(or|either)\b", sentence, re.I):
            return Pem.UNKNOWN, (f"participants met {quote(strict)} or {quote(old)}, so not all met a "
                                 f"definition that requires PEM: \"{_excerpt(sentence)}\"")
        if strict:
            extra = f" (with {quote(old)}; the strictest that all met)" if old else ""
            return Pem.REQUIRED, f"participants met {quote(strict)}{extra}: \"{_excerpt(sentence)}\""
    old_any = next(((s, cue) for s in parts if (cue := older.find(s))), None)
    strict_any = next(((s, cue) for s in parts if (cue := required.find(s))), None)
    if old_any and not strict_any:
        return Pem.NOT_REQUIRED, (f"only an older case definition that does not require PEM is named, "
                                  f"{quote(old_any[1])}: \"{_excerpt(old_any[0])}\"")
    participants_old = next(((s, o) for s, _, o in about if o), None)
    if participants_old:
        return Pem.NOT_REQUIRED, (f"participants met {quote(participants_old[1])}, which does not require "
                                  f"PEM: \"{_excerpt(participants_old[0])}\"")
    if strict_any:
        return Pem.UNKNOWN, (f"{quote(strict_any[1])} is named, but not as the definition participants met: "
                             f"\"{_excerpt(strict_any[0])}\"")
    return Pem.UNKNOWN, "no case definition (CCC, ICC, IOM 2015, Fukuda, Oxford, CDC 1994) is named"


def _excerpt(sentence: str, limit: int = 160) -> str:
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def split_interpretation(heading: str, paragraphs: list[str], line: int | None,
                         reading: Reading | None = None, where: str | None = None) -> list[Section]:
    """An interpretation's sentences as inferred, open-question, not-proven (and context) sections."""
    return route(heading, Role.INFERRED, paragraphs, line, reading, where)


def route(heading: str, start: Role, paragraphs: list[str], line: int | None, reading: Reading | None = None,
          where: str | None = None) -> list[Section]:
    """Sentences that a heading placed in `start`, each moved by its own words where they say so
    (roles.content_role), as one section per role in order of first appearance; each sentence and its
    reason go to the reading, in reading order."""
    where = where or f"under heading '{heading}'"
    routed: dict[Role, list[str]] = {}
    for sentence in (s for p in paragraphs for s in sentences(p)):
        role, why = content_role(sentence, start, where, limit_cue(sentence) if start not in
                                 (Role.SUMMARY, Role.CONTEXT, Role.METHODS) else None)
        routed.setdefault(role, []).append(sentence)
        if reading is not None:
            reading.add(sentence, role, why)
    return [Section(heading=heading, role=role, items=items, line=line) for role, items in routed.items()]


def _sections(lines: list[str], offset: int, file: str, problems: list[Problem],
              reading: Reading | None = None) -> list[Section]:
    """Sections in reading order. Headings are '## …' lines; one summary writes them as bold bullets
    ('- **What has been found?**') before any '##' heading, so those count too."""
    found: list[tuple[str, int, list[str]]] = []  # (heading, line, body lines); heading '' = skipped
    seen_hash_heading = False
    for n, line in enumerate(lines, start=offset + 1):
        heading = None
        if line.startswith("## "):
            heading, seen_hash_heading = line[3:].strip(), True
        elif not seen_hash_heading and (label := BOLD_LABEL.match(line)) and not label.group(2):
            heading = label.group(1).strip().rstrip(":").strip()
        if heading is None:
            if found:
                found[-1][2].append(line)
            continue
        heading = KNOWN.get(heading.lower(), heading)  # 'Conclusion & future work' is the same heading
        if heading not in HEADINGS:
            problems.append(Problem(file, n, f"unknown section heading '{heading[:60]}': expected one of "
                                    f"the summary headings; the closest is '{closest(heading)}'", "warning"))
            heading = ""
        found.append((heading, n, []))
    sections: list[Section] = []
    for heading, n, body in found:
        paragraphs = _paragraphs(body)
        if not heading:
            continue
        if not paragraphs:
            problems.append(Problem(file, n, f"empty section '{heading}': expected at least one paragraph",
                                    "warning"))
        elif HEADINGS[heading] in SENTENCE_ROLES:
            sections += route(heading, HEADINGS[heading], paragraphs, n, reading)
        else:
            role = HEADINGS[heading]
            sections.append(Section(heading=heading, role=role, items=paragraphs, line=n))
            if reading is not None:
                for sentence in (x for p in paragraphs for x in sentences(p)):
                    reading.add(sentence, role, f"under heading '{heading}'")
    return sections


def closest(heading: str) -> str:
    return difflib.get_close_matches(heading, list(HEADINGS), n=1, cutoff=0.0)[0]


def _paragraphs(lines: list[str]) -> list[str]:
    """Blank-line separated paragraphs, Markdown markup removed; each bullet is its own paragraph."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines + [""]:
        bullet = BULLET.match(line)
        if (not line.strip() or bullet or line.strip().startswith("<")) and current:
            paragraphs.append(" ".join(current))
            current = []
        text = clean(line)
        if text and not line.strip().startswith("<"):  # <details>/<summary> markup is not prose
            current.append(text)
    return [p for p in paragraphs if p]


def clean(line: str) -> str:
    """Plain text of one Markdown line: no bullet marker, emphasis, link targets, maths marks or emoji."""
    return clean_residue(BULLET.sub("", line, count=1))
