"""Stage 8, verify: is every sentence of the bottom line and short answer traceable, and is its wording
no stronger than the evidence? Returns the problems; the composer drops what fails (and an LLM
writer's text is replaced by the deterministic one)."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from .evidence import EvidenceSet
from .prompts import table
from .store import ScoredUnit, UnitId
from .study import Role

CERTAINTY_WORDS = ("prove", "proves", "proved", "proven", "proof", "cure", "cures", "cured", "cause",
                   "causes", "caused", "causing", "confirm", "confirms", "confirmed", "definitely",
                   "definitive", "certainly", "undoubtedly", "guarantees")
CITATION = re.compile(r"\[(\d+)\]")


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"“])", text.strip()) if s]


def overclaims(text: str, source_texts: list[str]) -> list[str]:
    """Certainty words in `text` that none of the given source texts uses (the wording-risk check)."""
    said = set(re.findall(r"[a-z]+", " ".join(source_texts).lower()))
    used = re.findall(r"[a-z]+", text.lower())
    return sorted({w for w in used if w in CERTAINTY_WORDS and w not in said})


def problems(sentence: str, evidence: EvidenceSet, fixed: list[str]) -> list[str]:
    """What is wrong with one sentence: a citation to no source, no citation (unless a fixed sentence
    from prompts/), or a certainty word that the cited studies do not state as an observed finding."""
    numbers = {s.n: s for s in evidence.studies}
    cited = [int(n) for n in CITATION.findall(sentence)]
    found = []
    if any(n not in numbers for n in cited):
        found.append("cites a source that is not in the answer")
    if not cited and sentence not in fixed:
        found.append("no citation")
    observed = [u.text for n in cited if n in numbers for u in numbers[n].units.get(Role.OBSERVED, [])]
    # Quoted limits may use "prove" ("does not prove"): only the writer's own words are checked.
    own = sentence.split(": ", 1)[0] if "cannot tell you" in sentence else sentence
    if words := overclaims(own, observed):
        found.append(f"certainty words the cited findings do not use: {', '.join(words)}")
    return found


def verified(text: str, evidence: EvidenceSet, fixed: list[str]) -> str:
    """The text without its failing sentences."""
    return " ".join(s for s in sentences(text) if not problems(s, evidence, fixed))


# ---- The sentence verifier for generated text (an LLM writer's bottom line and short answer) ----
#
# Every generated sentence must rest on the units it was given: cite only supplied sources, carry no
# number or name the units lack, have its content words covered by the units (stems and glossary
# groups), sit close to a unit in embedding space, keep the unit's negation and direction, keep an
# inferred claim hedged, never turn a limit into a finding, use no certainty or causal word the units
# do not, and not contradict the verdict. Its citations are then re-derived from the units it rests on.


NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
WORD = re.compile(r"[a-z0-9][a-z0-9/'-]*")


@dataclass
class Check:
    """The verifier's word on one sentence: kept or not, why, and what it rests on."""
    text: str  # the sentence, its citations re-derived when kept
    kept: bool
    reasons: list[str] = field(default_factory=list)
    units: list[UnitId] = field(default_factory=list)
    citations: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Supply:
    """A unit given to the writer, with the citation number of its study."""
    n: int
    role: Role
    unit: ScoredUnit


@cache
def _lexicon() -> dict:
    spec = table("llm")["verify"]
    rx = {k: re.compile(spec[k], re.I) for k in ("negation", "hedge", "limit", "never", "causal", "forbidden", "up", "down")}
    contradicts = {k: [re.compile(p, re.I) for p in v] for k, v in spec["contradicts"].items()}
    return {**rx, "contradicts": contradicts, "window": spec["negation_window"],
            "plain": set(spec["plain"]["words"].split())}


@cache
def _stemmer():
    import Stemmer  # PyStemmer (Snowball), already used by BM25

    return Stemmer.Stemmer("english").stemWords


@cache
def _glossary() -> dict[str, frozenset[str]]:
    """Stem of a word -> stems of every word of its glossary groups."""
    stems: dict[str, set[str]] = {}
    for group in table("glossary")["groups"]:
        words = frozenset(_stems(" ".join(group)))
        for w in words:
            stems.setdefault(w, set()).update(words)
    return {k: frozenset(v) for k, v in stems.items()}


def _stems(text: str) -> list[str]:
    return _stemmer()(WORD.findall(text.lower()))


class SentenceVerifier:
    """Checks generated sentences against the units supplied to the writer (one per answer)."""

    def __init__(self, evidence: EvidenceSet, supplied: list[Supply], verdict: str, fixed: list[str],
                 embed: Callable[[list[str]], np.ndarray], min_similarity: float, min_coverage: float):
        self.evidence, self.supplied, self.verdict, self.fixed = evidence, supplied, verdict, fixed
        self.embed, self.min_similarity, self.min_coverage = embed, min_similarity, min_coverage
        self.vectors = embed([s.unit.text for s in supplied]) if supplied else np.zeros((0, 1))
        question = evidence.understanding
        self.free = set(_stems(f"{question.subject} {question.search_text} {evidence.question}"))
        self.free |= set(_stemmer()(list(_lexicon()["plain"])))

    def check(self, sentence: str) -> Check:
        sentence = " ".join(sentence.split())
        if sentence in self.fixed:
            return Check(sentence, True)
        given = {n for n in (int(x) for x in CITATION.findall(sentence))}
        body = CITATION.sub("", sentence).replace(" .", ".").strip()
        if reasons := self._form(sentence, body, given):
            return Check(sentence, False, reasons)
        similarity = self.vectors @ self.embed([body])[0]
        near = [i for i in np.argsort(-similarity) if similarity[i] >= self.min_similarity]
        if not near:
            best = float(similarity.max()) if len(similarity) else 0.0
            return Check(sentence, False, [f"not close to any supplied unit (best similarity {best:.2f})"])
        support = [self.supplied[i] for i in near]
        reasons = self._support(body, support) + self._stance(body, support[0]) + self._wording(body, support)
        if reasons:
            return Check(sentence, False, reasons)
        cites = sorted({s.n for s in support[:3]})
        units = [s.unit.id for s in support[:3]]
        return Check(_recite(body, cites), True, [], units, cites)

    def _form(self, sentence: str, body: str, given: set[int]) -> list[str]:
        lex, numbers = _lexicon(), {s.n for s in self.evidence.studies}
        reasons = []
        if not given:
            reasons.append("no citation")
        if given - numbers:
            reasons.append(f"cites a source that was not supplied: {sorted(given - numbers)}")
        if lex["forbidden"].search(sentence):
            reasons.append("contains an address or markup")
        if not WORD.search(body.lower()):
            reasons.append("no words")
        return reasons

    def _support(self, body: str, support: list[Supply]) -> list[str]:
        """Numbers, names and content words of the sentence must all be in the supporting units."""
        said = " ".join(s.unit.text for s in support).lower()
        reasons = []
        for number in NUMBER.findall(body):
            if number.replace(",", "") not in said.replace(",", "") and number not in self.evidence.question:
                reasons.append(f"number {number} is not in the cited units")
        unit_stems = set(_stems(said))
        words = [w for w in _stems(body) if not w.isdigit() and len(w) > 2]
        uncovered = [w for w in words if w not in unit_stems and w not in self.free
                     and not (_glossary().get(w, frozenset()) & unit_stems)]
        if words and 1 - len(uncovered) / len(words) < self.min_coverage:
            reasons.append(f"words not in the cited units: {', '.join(sorted(set(uncovered)))}")
        for name in _names(body):
            if name.lower() not in said and name.lower() not in self.evidence.question.lower() \
                    and not (_glossary().get(_stems(name)[0], frozenset()) & unit_stems if _stems(name) else False):
                reasons.append(f"name {name} is not in the cited units")
        return reasons

    def _stance(self, body: str, unit: Supply) -> list[str]:
        """Negation, direction and role of the sentence against the unit it rests on most."""
        lex, text = _lexicon(), unit.unit.text
        reasons = []
        if bool(lex["negation"].search(body)) != bool(lex["negation"].search(text)) and unit.role == Role.OBSERVED:
            reasons.append("negation differs from the unit it rests on")
        for scale, other in (("up", "down"), ("down", "up")):
            if lex[scale].search(body) and not lex[other].search(body) and lex[other].search(text) and not lex[scale].search(text):
                reasons.append("direction differs from the unit it rests on")
        if unit.role == Role.INFERRED and not lex["hedge"].search(body):
            reasons.append("states the authors' inference as a finding (hedge dropped)")
        if unit.role in (Role.NOT_PROVEN, Role.OPEN_QUESTION) and not lex["limit"].search(body):
            reasons.append("states what the study does not prove as a finding")
        return reasons

    def _wording(self, body: str, support: list[Supply]) -> list[str]:
        """Certainty and cause words, and claims that contradict the verdict."""
        lex = _lexicon()
        observed = " ".join(s.unit.text for s in support if s.role == Role.OBSERVED)
        reasons = [f"certainty word: {w}" for w in _unnegated(lex["never"], body)]
        reasons += [f"causal word the cited findings do not use: {w}" for w in _unnegated(lex["causal"], body)
                    if not re.search(rf"\b{re.escape(w)}\b", observed, re.I)]
        for pattern in lex["contradicts"].get(self.verdict, []):
            if _unnegated(pattern, body):
                reasons.append(f"contradicts the verdict ({self.verdict})")
                break
        return reasons


def _unnegated(pattern: re.Pattern, text: str) -> list[str]:
    """Matches of `pattern` not preceded, within a few words, by a negation."""
    lex, found = _lexicon(), []
    for match in pattern.finditer(text):
        before = text[:match.start()].split()[-lex["window"]:]
        if not lex["negation"].search(" ".join(before)):
            found.append(match.group(0).lower())
    return found


def _names(text: str) -> list[str]:
    """Names and abbreviations: capitalised words after the first, and words with capitals or digits
    inside ('IL-6', 'CD8', 'DecodeME', 'LDN')."""
    names = []
    for i, token in enumerate(re.findall(r"[A-Za-z][\w/-]*", text)):
        if token.upper() == "ME/CFS" or token == "I":
            continue
        if (i > 0 and token[0].isupper()) or re.search(r"[a-z][A-Z]|[A-Z]{2,}|\d", token):
            names.append(token)
    return names


def _recite(body: str, cites: list[int]) -> str:
    """The sentence with the citations it was found to rest on, before its final stop."""
    marks = "".join(f"[{n}]" for n in cites)
    body = body.rstrip()
    end = body[-1] if body and body[-1] in ".!?" else "."
    return f"{body.rstrip('.!?').rstrip()} {marks}{end}"
