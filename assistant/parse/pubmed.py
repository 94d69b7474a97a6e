"""Parsers for PubMed records: MEDLINE text exports (.txt/.nbib) and JSON / JSONL records.

A file holds many records; each comes back as (study, problems), or (None, problems) when the
record cannot be read, so one bad record never stops the others."""
from __future__ import annotations

import json
import re
from typing import Literal

from ..study import Role, Section, Study, normalise_doi, study_id
from .markdown import FORWARD, finish, limit_cue, person_name, route, year_of
from .limits import LimitError, load_json
from .split import split_sentences as sentences
from .problems import Problem
from .roles import Reading, cues

Record = tuple[Study | None, list[Problem]]
SEPARATORS = re.compile(r"[\s,]*")  # between the elements of a JSON list

# Structured-abstract labels and the role of the text that follows them.
LABELS = {
    **dict.fromkeys(["background", "introduction", "objective", "objectives", "aim", "aims", "purpose",
                     "context", "rationale", "importance", "goal", "goals"], Role.CONTEXT),
    **dict.fromkeys(["methods", "method", "design", "setting", "settings", "participants", "patients",
                     "subjects", "materials", "methodology", "interventions", "intervention",
                     "measurements", "main outcome measures", "study design", "materials and methods",
                     "patients and methods", "trial registration", "data sources", "study selection",
                     "data extraction", "eligibility criteria"], Role.METHODS),
    **dict.fromkeys(["results", "result", "findings", "main results", "outcomes"], Role.OBSERVED),
    **dict.fromkeys(["conclusions", "conclusion", "interpretation", "discussion", "implications",
                     "significance", "conclusions and relevance"], Role.INFERRED),
    "limitations": Role.NOT_PROVEN,
}
# A label starts the abstract or a sentence: 'BACKGROUND:', 'Background/Objectives:', 'Methods:'.
LABEL = re.compile(r"(?:^|(?<=[.!?]\s)|(?<=\s\s))([A-Z][A-Za-z]{0,30}(?:[ /&]{1,3}[A-Za-z]{1,30}){0,4}) ?:\s")

# PubMed keeps some markup ('<b>Methods</b>:', 'PROMIS<sup>®</sup>'); a bare '<' ('age <18') is text.
TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*/?>")

# Publication types (PT) that decide the study type before any inference from the text.
PUBLICATION_TYPES = [
    ("randomized controlled trial", "rct"),
    ("systematic review", "systematic-review"),
    ("meta-analysis", "systematic-review"),
    ("clinical trial protocol", "protocol"),
    ("practice guideline", "guideline"),
    ("guideline", "guideline"),
    ("case reports", "case-report"),
    ("review", "review"),
    ("controlled clinical trial", "non-randomised-trial"),
    ("clinical trial", "non-randomised-trial"),  # also 'Clinical Trial, Phase II' and the like
]

# Cues for unstructured abstracts. Results carry numbers or report what was measured; claims about
# earlier work ('has been shown', 'previous studies showed') are background, not this study's results.
STATS = re.compile(r"\bp\s*[<=>≤]\s*0?\.\d|\d\s?%|(?-i:\b(OR|HR|RR|CI)\b)\s*[=:]?\s*\d", re.I)
P_VALUE = re.compile(r"\bp\s?[<=>≤]\s?0?\.\d|(?-i:\b(OR|HR|RR)\b)\s?[=:]?\s?\d|\b95\s?% CI\b", re.I)
RESULT = re.compile(
    r"\bwe (found|identified|detected|demonstrated)\b|\b(was|were) found\b|\bdemonstrated\b|\bshowed\b"
    r"|\bobserved\b|\bcorrelat|\bdid not differ\b|\b\w+ed significantly\b|\b(statistically|no|not) significant"
    r"|\b(was|were)\s+(significantly\s+)?(higher|lower|increased|reduced|decreased|elevated|greater|improved"
    r"|associated)\b|\bsignificant(ly)?\s+(\w+ed|higher|lower|greater|worse|better|more|less|differences?"
    r"|increases?|decreases?|reductions?|improvements?|associations?|correlations?|effects?)\b", re.I)
EARLIER_WORK = re.compile(r"\b(previous(ly)?|prior|earlier|recent (paper|study|work))\b|\b(has|have) been\b",
                          re.I)
CONCLUSION_OPENER = re.compile(r"^(these|our) (findings|results|data)\b|^(in conclusion|taken together|"
                               r"overall|we conclude)\b|\bconclude", re.I)
INTERPRETATION = re.compile(r"\b(suggests?|suggesting|may|might|indicates?|indicating|impl(y|ies)|"
                            r"conclude[sd]?|these (findings|results|data))\b", re.I)
METHOD = re.compile(
    r"\bwe (included|recruited|enrolled|followed|used|measured|performed|conducted|collected|analy[sz]ed"
    r"|assessed)\b|\b(was|were) (assessed|measured|recruited|enrolled|randomi[sz]ed|divided|assigned|collected"
    r"|evaluated|performed|conducted|used|applied)\b|^this was an?\b|\bn\s*=\s*\d", re.I)


# ---------------------------------------------------------------------------------------- MEDLINE

def parse_medline(text: str, file: str) -> list[Record]:
    """Every record of a MEDLINE export; records are separated by blank lines."""
    return [_medline_record(fields, file, line) for fields, line in _medline_blocks(text, file)]


def _medline_blocks(text: str, file: str):
    """(fields, first line) per record; fields are (tag, value, line) with continuations joined."""
    fields: list[list] = []
    start = 0
    for n, line in enumerate(text.splitlines() + [""], start=1):
        if not line.strip():
            if fields:
                yield fields, start
            fields = []
        elif line.startswith("      ") and fields:  # a continuation line: six spaces
            fields[-1][1] += " " + line.strip()
        elif match := re.match(r"^([A-Z]{2,4})\s*- ?(.*)$", line):
            if not fields:
                start = n
            fields.append([match.group(1), match.group(2).strip(), n])
        else:
            if not fields:
                start = n
            fields.append(["??", line.strip(), n])  # reported by _medline_record, not dropped silently


def _medline_record(fields: list[list], file: str, line: int) -> Record:
    values: dict[str, list[str]] = {}
    problems = [Problem(file, n, f"unreadable line '{value[:40]}': expected 'TAG - value' or a continuation "
                        "indented six spaces", "warning") for tag, value, n in fields if tag == "??"]
    for tag, value, _ in fields:
        values.setdefault(tag, []).append(value)

    def first(tag: str) -> str | None:
        return values.get(tag, [None])[0]

    pmid, title = first("PMID"), first("TI")
    if not title:
        what = f"record PMID {pmid}" if pmid else "record"
        return None, [*problems, Problem(file, line, f"{what} has no title: expected a 'TI  - ' line"
                                         + ("" if pmid else " and a 'PMID- ' line"))]
    authors = values.get("FAU") or [person_name(a) for a in values.get("AU", [])]
    authors += values.get("CN", [])  # a collective author (consortium) is an author as written
    doi = next((normalise_doi(v) for v in values.get("AID", []) + values.get("LID", [])
                if v.endswith("[doi]")), None)
    year = year_of(first("DP"))
    study = _study(pmid, title, first("AB") or "", authors, year, first("JT") or first("TA"), doi,
                   file, "medline", line)
    types = values.get("PT", [])
    study.study_type, reason = type_from_publication_with_reason(types, study)
    study.retracted = retracted(types) or bool(values.get("RIN"))  # 'RIN - Retraction in: …'
    finish(study, publication_types=types, type_reason=reason)
    return study, problems


def retracted(types: list[str]) -> bool:
    """PubMed marks a retracted article with the publication type 'Retracted Publication'."""
    return any(isinstance(t, str) and t.strip().lower() == "retracted publication" for t in types)


def type_from_publication(types: list[str], study: Study) -> str:
    """The study type from PubMed's publication types, 'other' when none decides it (then inferred)."""
    return type_from_publication_with_reason(types, study)[0]


def type_from_publication_with_reason(types: list[str], study: Study) -> tuple[str, str]:
    lowered = {t.strip().lower() for t in types if isinstance(t, str)}
    for name, kind in PUBLICATION_TYPES:
        found = next((t for t in sorted(lowered) if t == name or t.startswith(name + ",")), None)
        if found:
            return kind, f"publication type '{found}'"
    if "observational study" in lowered:
        text = " ".join([study.title, *(i for s in study.sections for i in s.items)])
        if re.search(r"\bcohort\b", text, re.I):
            return "cohort", "publication type 'observational study' and the word 'cohort' in the text"
        return "cross-sectional", "publication type 'observational study' without a cohort"
    return "other", ""


# ------------------------------------------------------------------------------------------- JSON

def parse_pubmed_json(text: str, file: str) -> list[Record]:
    """Records from a JSON list, an object holding the list under any key, one record object,
    or JSONL (one object per line)."""
    try:
        data = load_json(text)
    except json.JSONDecodeError as err:
        if _looks_like_jsonl(text, err):
            return _jsonl(text, file)
        return [(None, [Problem(file, err.lineno, f"invalid JSON: {err.msg} (column {err.colno})")])]
    except LimitError as err:
        if text.lstrip().startswith("{") and "\n" in text.strip():  # JSONL: only the deep lines are lost
            return _jsonl(text, file)
        return [(None, [Problem(file, 1, str(err))])]
    key, records = _record_list(data)
    if not records:
        return [(None, [Problem(file, 1, "no records: expected a JSON list of records, an object "
                                "holding one, or a record with 'title'")])]
    lines = _element_lines(text, key) if key is not False else [1]
    return [_json_record(r, file, lines[i] if i < len(lines) else 1, i + 1) for i, r in enumerate(records)]


def _looks_like_jsonl(text: str, err: json.JSONDecodeError) -> bool:
    """One object per line: the first object parsed and more followed ('Extra data'), or, when the
    first line itself is broken, most lines still start an object."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    starts = sum(line.startswith("{") for line in lines)
    return lines[0].startswith("{") and ("Extra data" in err.msg or len(lines) > 1 and 2 * starts > len(lines))


def _record_list(data) -> tuple[str | None | Literal[False], list | None]:
    """(where the list is: None for a top-level list, a key, False for a single record; the list)."""
    if isinstance(data, list):
        return None, data
    if isinstance(data, dict):
        if "title" in data or "pmid" in data:
            return False, [data]
        lists = [k for k, v in data.items() if isinstance(v, list)]
        # the records: a list of objects rather than, say, a list of tags beside it
        objects = [k for k in lists if any(isinstance(r, dict) for r in data[k])]
        key = (objects or lists or [None])[0]
        if key is not None:
            return key, data[key]
    return None, None


def _element_lines(text: str, key: str | None) -> list[int]:
    """The line where each element of the record list starts, found by decoding the list element by
    element from its opening bracket (exact, where a text search for the title would only guess)."""
    if key is None:
        pos = text.index("[")
    else:
        match = re.search(re.escape(json.dumps(key)) + r"\s*:\s*\[", text)
        if not match:
            return []
        pos = match.end() - 1
    decoder, pos = json.JSONDecoder(), pos + 1
    lines: list[int] = []
    while True:
        pos = SEPARATORS.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string too
        if pos >= len(text) or text[pos] == "]":
            return lines
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)


def _jsonl(text: str, file: str) -> list[Record]:
    records = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(_json_record(load_json(line), file, n, n))
        except json.JSONDecodeError as err:
            records.append((None, [Problem(file, n, f"invalid JSON on this line: {err.msg} "
                                           f"(column {err.colno}); expected one record object per line")]))
        except LimitError as err:
            records.append((None, [Problem(file, n, f"record {n}: {err}")]))
    return records


# What each field of a JSON record may hold: (accepted types, what the error says was expected).
FIELD_TYPES = {
    "pmid": ((str, int), "a string or a whole number"),
    "title": ((str,), "a string"),
    "abstract": ((str, dict, list), "a string (or structured: an object of label -> text)"),
    "authors": ((list, str), "a list of strings"),
    "year": ((int, str), "a year such as 2025 or \"2025-03-01\""),
    "journal": ((str,), "a string"),
    "doi": ((str,), "a string"),
    "publication_types": ((list, str), "a list of strings"),
}


def _field_problems(record: dict) -> dict[str, str]:
    """{field: 'field X is a T; expected …'} for every field of the wrong type."""
    found = {}
    for name, (types, expected) in FIELD_TYPES.items():
        value = record.get(name)
        if value is None:
            continue
        ok = isinstance(value, types) and not isinstance(value, bool)
        if ok and isinstance(value, list):
            allowed = (str, dict) if name == "abstract" else (str,)
            bad = next((v for v in value if not isinstance(v, allowed)), None)
            if bad is not None or any(isinstance(v, dict) and not _flat(v) for v in value):
                found[name] = (f"field '{name}' holds {_article(_json_type(bad))} ({_preview(bad)}); expected {expected}"
                               if bad is not None else f"field '{name}' is nested too deep; expected {expected}")
                continue
        if ok and isinstance(value, dict):
            ok = _flat(value)
        if not ok:
            found[name] = f"field '{name}' is {_article(_json_type(value))} ({_preview(value)}); expected {expected}"
    return found


def _flat(value: dict) -> bool:
    return all(isinstance(v, str) for v in value.values())


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _json_type(value) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


def _preview(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _abstract_text(value) -> str:
    """A structured abstract as 'LABEL: text' parts, so its labels map to roles."""
    if isinstance(value, dict):
        return " ".join(f"{label.upper()}: {text}" for label, text in value.items())
    if isinstance(value, list):
        return " ".join(_abstract_text(v) for v in value)
    return str(value or "")


def _json_record(record, file: str, line: int, number: int) -> Record:
    if not isinstance(record, dict):
        return None, [Problem(file, line, f"record {number} is not a JSON object: expected "
                              "{\"pmid\": …, \"title\": …, \"abstract\": …}")]
    pmid = str(record["pmid"]).strip() if isinstance(record.get("pmid"), (str, int)) and record.get("pmid") \
        else None
    what = f"record {number} (PMID {pmid})" if pmid else f"record {number}"
    wrong = _field_problems(record)
    if "title" in wrong:  # without a title there is no study to keep
        return None, [Problem(file, line, f"{what}: {wrong['title']}")]
    # any other field of the wrong type is left out, with a warning; the record is still read
    problems = [Problem(file, line, f"{what}: {message}; the field was left out", "warning")
                for message in wrong.values()]
    record = {k: v for k, v in record.items() if k not in wrong}
    title = str(record.get("title") or "").strip()
    if not title:
        return None, [Problem(file, line, f"{what} has no title: expected a \"title\" field")]
    study = _study(pmid, title, _abstract_text(record.get("abstract")), _json_authors(record.get("authors")),
                   year_of(record.get("year")), str(record["journal"]) if record.get("journal") else None,
                   normalise_doi(str(record.get("doi") or "")), file, "json", line)
    types = record.get("publication_types") or []
    types = types if isinstance(types, list) else [types]
    study.study_type, reason = type_from_publication_with_reason(types, study)
    study.retracted = record.get("retracted") is True or retracted(types)  # `atlas-assistant sync` writes it
    finish(study, publication_types=types, type_reason=reason)
    return study, problems


def _json_authors(value) -> list[str]:
    """Names as 'Surname, Given'. When most names of a record are one word the list holds surnames
    only, and a two-word name is a compound surname ('Cohen Tervaert'), not 'Given Surname'."""
    value = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    names = [str(a).strip() for a in value if str(a).strip()]
    if sum(len(n.split()) == 1 for n in names) * 2 >= len(names):
        return names
    return [person_name(n) for n in names]


# -------------------------------------------------------------------------------------- abstracts

def _study(pmid, title, abstract, authors, year, journal, doi, file, fmt, line) -> Study:
    title = re.sub(r"\s+", " ", TAG.sub("", title)).strip()
    reading = Reading()
    study = Study(id=study_id(doi, pmid, authors, year, title), title=title, authors=authors,
                  journal=journal, year=year, doi=doi, pmid=pmid, source_path=file, source_format=fmt,
                  sections=abstract_sections(abstract, line, reading))
    study.__dict__["_reading"] = reading
    return study


def abstract_sections(abstract: str, line: int | None = None, reading: Reading | None = None) -> list[Section]:
    """Sections of an abstract: by its labels when structured, else by the cues of each sentence."""
    text = re.sub(r"\s+", " ", TAG.sub("", abstract)).strip()
    if not text:
        return []
    parts = _labelled_parts(text)
    if len(parts) < 2:
        return _unstructured(text, line, reading)
    sections = []
    for label, role, body in parts:
        where = f"structured-abstract label '{label.upper()}:'" if label != "Background" or \
            text.lower().startswith("background") else "text before the first label"
        if role in (Role.INFERRED, Role.OBSERVED):  # results and conclusions: each sentence by its words too
            sections += route(label, role, [body], line, reading, where)
        elif role == Role.NOT_PROVEN:
            sections.append(Section(heading=label, role=role, items=sentences(body), line=line))
            for sentence in sections[-1].items:
                _add(reading, sentence, role, where)
        else:
            sections.append(Section(heading=label, role=role, items=[body], line=line))
            for sentence in sentences(body):
                _add(reading, sentence, role, where)
    return sections


def _add(reading: Reading | None, sentence: str, role: Role, why: str) -> None:
    if reading is not None:
        reading.add(sentence, role, why)


def _labelled_parts(text: str) -> list[tuple[str, Role, str]]:
    """(label, role, text) for each known label; text before the first label is background."""
    marks = [(m, _label_role(m.group(1))) for m in LABEL.finditer(text)]
    known = [(m, role) for m, role in marks if role is not None]
    if len(known) < 2:  # one stray label ('METHODS:' alone) does not make an abstract structured
        return []
    parts = []
    lead = text[: known[0][0].start()].strip()
    if lead:
        parts.append(("Background", Role.CONTEXT, lead))
    for i, (match, role) in enumerate(known):
        end = known[i + 1][0].start() if i + 1 < len(known) else len(text)
        body = text[match.end():end].strip()
        if body:
            parts.append((match.group(1).strip().title(), role, body))
    return parts


def _label_role(label: str) -> Role | None:
    key = label.strip().lower()
    if key in LABELS:
        return LABELS[key]
    # 'Background/Objectives', 'Design, Setting and Participants': the first known part decides
    return next((LABELS[p.strip()] for p in re.split(r"/|&|,| and ", key) if p.strip() in LABELS), None)


def _unstructured(text: str, line: int | None, reading: Reading | None = None) -> list[Section]:
    """Assign each sentence a role by its cues, in abstract order: background and aims, then methods,
    results, and the authors' reading of them. Interpretive words ('may') early on are background;
    interpretation and advice never count as a result."""
    text = LABEL.sub(lambda m: "" if _label_role(m.group(1)) else m.group(0), text)  # a stray 'METHODS:'
    parts = sentences(text)
    routed: dict[Role, list[str]] = {}
    results_seen = False
    interpretation, advice = cues("roles", "interpretation"), cues("roles", "recommendation")
    complaint = cues("roles", "field_complaint")
    for i, sentence in enumerate(parts):
        late = results_seen or i >= 0.6 * len(parts)
        limit = limit_cue(sentence)
        said = interpretation.find(sentence) or advice.find(sentence)
        if limit and not complaint.find(sentence):
            role, why = Role.NOT_PROVEN, f"limit cue '{limit.lower()}' (this study's own limit)"
        elif (m := FORWARD.search(sentence) or re.search(r"\bfuture\b", sentence, re.I)) and late:
            role, why = Role.OPEN_QUESTION, f"future-work cue '{m.group(0).lower()}' late in the abstract"
        elif (m := CONCLUSION_OPENER.search(sentence)) and late:
            role, why = Role.INFERRED, f"conclusion opener '{m.group(0).lower()}' late in the abstract"
        elif i == 0 and (m := P_VALUE.search(sentence) or STATS.search(sentence) and RESULT.search(sentence)) \
                and not METHOD.search(sentence) \
                and not EARLIER_WORK.search(sentence):  # a findings-first abstract (BibTeX exports)
            role, why, results_seen = Role.OBSERVED, f"statistics '{m.group(0)}' in a findings-first abstract", True
        elif i == 0:  # an abstract opens with background, whatever words it uses
            role, why = Role.CONTEXT, "first sentence of an unstructured abstract: background"
        elif said and (late or STATS.search(sentence) or RESULT.search(sentence)):
            role, why = Role.INFERRED, f"interpretation cue '{said.lower()}': the authors' reading, not a result"
        elif said:
            role, why = Role.CONTEXT, f"interpretation cue '{said.lower()}' before any result: background"
        elif (m := STATS.search(sentence)) and not METHOD.search(sentence) and not EARLIER_WORK.search(sentence):
            role, why, results_seen = Role.OBSERVED, f"statistics '{m.group(0)}' and no method cue", True
        elif m := METHOD.search(sentence):
            role, why = Role.METHODS, f"method cue '{m.group(0).lower()}'"
        elif (m := STATS.search(sentence) or RESULT.search(sentence)) and not EARLIER_WORK.search(sentence):
            role, why, results_seen = Role.OBSERVED, f"result cue '{m.group(0).lower()}'", True
        elif cue := complaint.find(sentence):
            role, why = Role.CONTEXT, f"about the field ('{cue.lower()}'), not this study"
        else:
            role, why = Role.CONTEXT, "no result, method or interpretation cue: background"
        routed.setdefault(role, []).append(sentence)
        _add(reading, sentence, role, why + " (unstructured abstract)")
    order = [Role.CONTEXT, Role.METHODS, Role.OBSERVED, Role.INFERRED, Role.OPEN_QUESTION, Role.NOT_PROVEN]
    headings = {Role.CONTEXT: "Background", Role.METHODS: "Methods", Role.OBSERVED: "Results",
                Role.INFERRED: "Conclusions", Role.OPEN_QUESTION: "Open questions",
                Role.NOT_PROVEN: "Limitations"}
    prose = (Role.CONTEXT, Role.METHODS)  # paragraphs, as in the other formats; the rest one per sentence
    return [Section(heading=headings[role], role=role, line=line,
                    items=[" ".join(routed[role])] if role in prose else routed[role])
            for role in order if role in routed]
