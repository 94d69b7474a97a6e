"""Roles by content: the cue lexicons of prompts/roles.toml compiled once, and the reading of one
sentence against them, each decision with its reason ('why').

A role from a heading or a structured-abstract label is where a sentence starts; its own words can
move it: interpretation or advice never stays `observed`, a stated limit of this study becomes
`not_proven`, a complaint about the field `context`, future work `open_question`."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import numpy as np

from ..prompts import PROMPTS_DIR, table
from ..study import Role
from ..tfidf import sublinear_tfidf


@dataclass
class Sentence:
    text: str
    role: Role
    why: str
    cue_role: Role | None = None  # what the headings and cue lexicons said, before the learned layer


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


# The learned layer (tools/train_roles.py): a logistic regression over the sentence's words (TF-IDF of
# words and word pairs, as scikit-learn computes it) and what the headings and cues said, trained on
# sentences that a reader who never saw the parsers labelled (evals/roles.jsonl, dev split). Its
# weights are data (prompts/roles_learned.json), read with numpy. Atlas pages keep their blocks.
TOKEN = re.compile(r"(?u)\b\w\w+\b")
LEARNED_ROLES = [Role.SUMMARY, Role.CONTEXT, Role.METHODS, Role.OBSERVED, Role.INFERRED, Role.OPEN_QUESTION,
                 Role.NOT_PROVEN]


@cache
def _learned() -> dict:
    data = json.loads((PROMPTS_DIR / "roles_learned.json").read_text(encoding="utf-8"))
    data["coef"] = np.asarray(data["coef"], dtype="float64")
    data["intercept"] = np.asarray(data["intercept"], dtype="float64")
    data["idf"] = np.asarray(data["idf"], dtype="float64")
    return data


INTERPRETATION = len(LEARNED_ROLES) + 2  # where dense_features puts "has interpretation words"


def dense_features(text: str, cue_role: Role, position: float, abstract: bool) -> list[float]:
    """What the words alone do not carry: the cues' role, where the sentence sits, the format, figures."""
    return ([float(cue_role == r) for r in LEARNED_ROLES]
            + [float(abstract), float(bool(re.search(r"\d", text))), float(bool(cues("roles", "interpretation").find(text))),
               position])


def learned_probabilities(text: str, dense: list[float]) -> np.ndarray:
    """The learned layer's probability of each role (LEARNED_ROLES order) for one sentence, given its
    dense features."""
    model = _learned()
    tokens = TOKEN.findall(text.lower())
    index, weights = sublinear_tfidf(tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])], model["vocabulary"],
                                     model["idf"])
    scores = model["intercept"] + model["coef"][:, index] @ weights
    scores += model["coef"][:, len(model["idf"]):] @ np.asarray(dense)
    probs = np.exp(scores - scores.max())
    ordered = np.zeros(len(LEARNED_ROLES))
    ordered[[LEARNED_ROLES.index(Role(c)) for c in model["classes"]]] = probs / probs.sum()
    return ordered


def settle(probs: np.ndarray, cue_role: Role, interpretation: bool, threshold: float, observed_threshold: float) -> Role:
    """The role a sentence ends with: `observed` only when the layer is sure of it (and never with
    interpretation language), a limit the cues found stays, an inference never becomes context or
    methods, and otherwise the layer's choice where it is at least `threshold` surer of it than of
    what the cues said."""
    allowed = probs.copy()
    observed = LEARNED_ROLES.index(Role.OBSERVED)
    if interpretation or probs[observed] < observed_threshold:
        allowed[observed] = -1.0
    best = LEARNED_ROLES[int(allowed.argmax())]
    if cue_role == Role.NOT_PROVEN:
        return cue_role
    # The authors' reading or advice ("These findings suggest …", "Patients should pace …") never
    # becomes background or method.
    if cue_role == Role.INFERRED and best in (Role.CONTEXT, Role.METHODS):
        return cue_role
    if cue_role == Role.OBSERVED and best != Role.OBSERVED:
        return best
    return cue_role if best == cue_role or allowed.max() - probs[LEARNED_ROLES.index(cue_role)] < threshold else best


def fixed_by_heading(cue_role: Role, abstract: bool) -> bool:
    """A summary's own overview (its `Summary` section) stays `summary`, as DESIGN.md maps it, even where
    it interprets: labellers split on calling such overviews summary or inferred, and summary units are
    never quoted as findings, so the contract decides rather than the layer."""
    return cue_role == Role.SUMMARY and not abstract


def relearn(reading: Reading, abstract: bool) -> bool:
    """Let the learned layer settle each sentence's role (see `settle`); the reason gives both the
    layer's word and what the cues said. True when any role changed."""
    model, changed, n = _learned(), False, len(reading.sentences)
    for i, sentence in enumerate(reading.sentences):
        cue_role = sentence.cue_role = sentence.role
        if fixed_by_heading(cue_role, abstract):
            continue
        dense = dense_features(sentence.text, cue_role, i / max(1, n - 1), abstract)
        probs = learned_probabilities(sentence.text, dense)
        role = settle(probs, cue_role, bool(dense[INTERPRETATION]), model["threshold"], model["observed_threshold"])
        if role != cue_role:
            sentence.role, changed = role, True
            sentence.why = (f"learned from labelled sentences: {role.value} "
                            f"({probs[LEARNED_ROLES.index(role)]:.2f}); the cues said {cue_role.value}: {sentence.why}")
    return changed
