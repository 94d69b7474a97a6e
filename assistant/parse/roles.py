"""Roles by content: the cue lexicons of prompts/roles.toml compiled once, and the reading of one
sentence against them, each decision with its reason ('why').

A role from a heading or a structured-abstract label is where a sentence starts; its own words can
move it: interpretation or advice never stays `observed`, a stated limit of this study becomes
`not_proven`, a complaint about the field `context`, future work `open_question`."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from ..prompts import table
from ..study import Role


@dataclass
class Sentence:
    text: str
    role: Role
    why: str


@dataclass
class Reading:
    """How one study was read: its sentences in reading order with role and why, and the reasons
    for its study type and PEM criterion. Kept beside the Study by the parse layer."""

    sentences: list[Sentence] = field(default_factory=list)
    study_type_reason: str = ""
    pem_reason: str = ""
    line: int | None = None  # where the study starts in a many-record file
    notes: list[str] = field(default_factory=list)  # what of the file was left out on purpose, and why

    def add(self, text: str, role: Role, why: str) -> None:
        self.sentences.append(Sentence(text, role, why))


def reading_of(study) -> Reading:
    """The Reading attached to a study (a new empty one if it has none). Kept as a plain attribute, not a
    field of Study, so it never enters the index or the study's content hash."""
    reading = study.__dict__.get("_reading")
    if reading is None:
        reading = study.__dict__["_reading"] = Reading()
    return reading


class Cues:
    """One lexicon: literal cues as one alternation of whole words, 're:' cues as patterns."""

    def __init__(self, cues: list[str]):
        literal = sorted((c for c in cues if not c.startswith("re:")), key=len, reverse=True)
        parts = [r"\b(?:" + "|".join(re.escape(c) for c in literal) + r")\b"] if literal else []
        parts += [c[3:] for c in cues if c.startswith("re:")]
        self.pattern = re.compile("|".join(f"(?:{p})" for p in parts), re.I)

    def find(self, text: str) -> str | None:
        match = self.pattern.search(text)
        return match.group(0) if match else None


@cache
def cues(group: str, name: str) -> Cues:
    return Cues(table("roles")[group][name])


def quote(cue: str) -> str:
    return f"'{cue.lower()}'"


def content_role(sentence: str, start: Role, where: str, limit_cue: str | None | Literal[False] = False) -> tuple[Role, str]:
    """The role of one sentence that a heading or label placed in `start` (said by `where`, e.g.
    "heading 'What has been found?'"), and why. Order: a limit of this study, a complaint about the
    field, future work, then interpretation or advice (never observed), then methods. `limit_cue` is
    the caller's finding about limits (None: the sentence states none); by default the lexicon decides."""
    limit = cues("roles", "limit").find(sentence) if limit_cue is False else limit_cue
    complaint = cues("roles", "field_complaint").find(sentence)
    if start in (Role.SUMMARY, Role.CONTEXT, Role.METHODS):
        return start, f"{where}"
    if limit and not complaint:
        return Role.NOT_PROVEN, f"limit cue {quote(limit)} (this study's own limit), {where}"
    said = cues("roles", "interpretation").find(sentence)
    # in findings, 'unlike previous studies, X…' stays; 'the study concludes that X is overlooked' is inferred
    if complaint and (limit or start == Role.INFERRED and not said):
        return Role.CONTEXT, f"complaint about the field {quote(complaint)}, not this study's limit, {where}"
    forward = cues("roles", "forward").find(sentence)
    if forward:
        return Role.OPEN_QUESTION, f"future-work cue {quote(forward)}, {where}"
    if start == Role.OBSERVED:
        cue = cues("roles", "interpretation").find(sentence)
        if cue:
            return Role.INFERRED, f"interpretation cue {quote(cue)}: not an observed finding, {where}"
        cue = cues("roles", "recommendation").find(sentence)
        if cue:
            return Role.INFERRED, f"recommendation cue {quote(cue)}: advice, not an observed finding, {where}"
        cue = cues("roles", "methods").find(sentence)
        if cue:
            return Role.METHODS, f"method cue {quote(cue)}: how it was done, not a finding, {where}"
    return start, where
