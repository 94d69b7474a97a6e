"""Stage 5c, understand: what kind of question this is, what it asks about, and the researchable question
behind conversational or emotional wording. Wording is never a reason to refuse; it is mapped, using
the abbreviations and lay words in prompts/understand.toml ("LDN", "crash", "all in my head")."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from .prompts import table

TYPES = ("treatment", "cause", "mechanism", "test", "prevalence", "prognosis", "experience", "other")


@dataclass(frozen=True)
class Understanding:
    question_type: str  # one of TYPES
    subject: str  # what is asked about, in the library's words ("low-dose naltrexone")
    search_text: str  # the question with lay words and abbreviations mapped, for retrieval
    topic: str  # the subject words alone, without conversation, for the evidence check
    premise: bool  # presupposes something ("why does GET cure ME?"): checked against the evidence
    emotional: bool  # open with a warm sentence
    named: bool = False  # the subject is a term from the lexicon ("low-dose naltrexone"), not loose words

    @property
    def head(self) -> str:
        """The words the subject stands or falls with: all of a named term, else its first word."""
        return self.subject if self.named else self.subject.split(" ")[0]


@cache
def _lexicon() -> dict:
    spec = table("understand")
    flags = lambda p: 0 if p.startswith("(?-i:") else re.I  # noqa: E731
    return {
        "terms": [(re.compile(k, flags(k)), v) for k, v in spec["terms"].items()],
        "conversation": set(spec["conversation"]["words"]),
        "types": [(name, [re.compile(p, re.I) for p in patterns]) for name, patterns in spec["types"].items()],
        "premise": [re.compile(p, re.I) for p in spec["premise"]["patterns"]],
        "emotion": [re.compile(p, re.I) for p in spec["emotion"]["patterns"]],
        "warm": spec["emotion"]["warm"],
    }


def understand(question: str) -> Understanding:
    lex = _lexicon()
    mapped, named = question, []
    for pattern, words in lex["terms"]:
        if pattern.search(mapped):
            named.append(words)
            mapped = pattern.sub(f" {words} ", mapped)
    kept = [w for w in re.findall(r"[\w'/-]+", mapped) if w.lower() not in lex["conversation"]]
    topic = " ".join(kept) or question
    return Understanding(
        question_type=question_type(question, mapped),
        subject=_subject(named, kept),
        search_text=" ".join(mapped.split()),
        topic=topic,
        premise=any(p.search(question) for p in lex["premise"]),
        emotional=any(p.search(question) for p in lex["emotion"]),
        named=bool(named),
    )


def question_type(question: str, mapped: str = "") -> str:
    for name, patterns in _lexicon()["types"]:
        if any(p.search(question) or (mapped and p.search(mapped)) for p in patterns):
            return name
    return "other"


def warm_sentence() -> str:
    return _lexicon()["warm"]


GENERIC = {"me/cfs", "cfs", "me", "myalgic", "encephalomyelitis", "chronic", "fatigue", "syndrome", "long", "covid",
           "study", "studies", "research", "evidence", "patients", "illness", "disease", "treatment", "work", "works"}


def _subject(named: list[str], kept: list[str]) -> str:
    """The subject as it can be named in an answer: a mapped term when the question used one, else
    the question's remaining content words (at most five)."""
    if named:
        return named[0]
    words = [w for w in kept if w.lower() not in GENERIC and len(w) > 2]
    return " ".join(words[:5]) or "this"
