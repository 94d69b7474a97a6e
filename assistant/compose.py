"""Stage 6, compose: the extractive answer. Deterministic and offline; faithful by construction.

Items are units of the cited study's own sections, picked by similarity to the question: `shows` only
from observed findings, `infers` only from inferred conclusions, `does_not_prove` from the not-proven
section (or, where a study has none, design caveats marked generated), `open_questions` from remaining
questions. The short answer is assembled from those same items with neutral templates from prompts/.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .answer import ANSWERED, Answer, Item, Source
from .chunk import units
from .parse.design import design_caveats
from .present import as_sentence
from .prompts import table
from .retrieve import Library, StudyHit
from .study import Role, Study


@dataclass(frozen=True)
class Limits:
    studies: int
    observed: int  # per study
    inferred: int
    not_proven: int
    open_questions: int
    short_words: int  # the short answer's word budget


LIMITS = {
    "patient": Limits(studies=3, observed=2, inferred=1, not_proven=1, open_questions=1, short_words=120),
    "clinician": Limits(studies=5, observed=3, inferred=2, not_proven=2, open_questions=1, short_words=200),
}
CERTAINTY_WORDS = ("prove", "proves", "proved", "proven", "proof", "cure", "cures", "cured", "cause",
                   "causes", "caused", "causing", "confirm", "confirms", "confirmed", "definitely",
                   "definitive", "certainly", "undoubtedly", "guarantees")
CAUSAL_CUES = re.compile(r"\b(caus\w*|prov\w*|proof|because|due to|responsib\w*|lead\w* to|trigger\w*|"
                         r"root|origin|primary|secondary|consequence)\b", re.I)


def is_causal(question: str) -> bool:
    return bool(CAUSAL_CUES.search(question))


def overclaims(text: str, source_texts: list[str]) -> list[str]:
    """Certainty words in `text` that none of the cited sources uses (the wording-risk check)."""
    said = set(re.findall(r"[a-z]+", " ".join(source_texts).lower()))
    used = re.findall(r"[a-z]+", text.lower())
    return sorted({w for w in used if w in CERTAINTY_WORDS and w not in said})


def ranked_units(library: Library, study: Study, role: Role, query: np.ndarray, bias=None) -> list[str]:
    """The study's units of one role, most relevant to the question first."""
    texts = units(study, role)
    scores = [library.similarity(query, f"{study.id}::{role.value}::{i}") for i in range(len(texts))]
    if bias:
        scores = [s + bias(t) for s, t in zip(scores, texts)]
    return [texts[i] for i in np.argsort(scores)[::-1]]


def select_studies(hits: list[StudyHit], limits: Limits, margin: float) -> list[StudyHit]:
    """The studies to cite: the best, and others nearly as relevant (one weak study adds noise)."""
    if not hits:
        return []
    best = max(h.relevance for h in hits)
    return [h for h in hits if h.relevance >= best - margin][:limits.studies]


def compose(question: str, query: np.ndarray, hits: list[StudyHit], library: Library,
            mode: str = "patient", margin: float = 0.12) -> Answer:
    limits = LIMITS[mode]
    causal = is_causal(question)
    chosen = select_studies(hits, limits, margin)
    sources = [Source(n, hit.study, hit.relevance) for n, hit in enumerate(chosen, start=1)]
    answer = Answer(question=question, status=ANSWERED, short_answer="", sources=sources)
    causal_bias = (lambda t: 0.15 if CAUSAL_CUES.search(t) else 0.0) if causal else None
    for source in sources:
        study, n = source.study, [source.n]
        pick = lambda role, k, bias=None: ranked_units(library, study, role, query, bias)[:k]  # noqa: E731
        answer.shows += [Item(t, "observed", n) for t in pick(Role.OBSERVED, limits.observed)]
        answer.infers += [Item(t, "inferred", n) for t in pick(Role.INFERRED, limits.inferred)]
        limits_said = pick(Role.NOT_PROVEN, limits.not_proven, causal_bias)
        if limits_said:
            answer.does_not_prove += [Item(t, "not_proven", n) for t in limits_said]
        elif caveats := design_caveats(study):
            answer.does_not_prove += [Item(t, "not_proven", n, generated=True) for t in caveats.items]
        answer.open_questions += [Item(t, "open_question", n)
                                  for t in pick(Role.OPEN_QUESTION, limits.open_questions)]
    answer.short_answer = short_answer(answer, mode, limits)
    return answer


def short_answer(answer: Answer, mode: str, limits: Limits) -> str:
    """A plain synthesis built only from the selected items; every sentence carries a citation."""
    texts, kinds = table("answer")["short"], table("answer")["kinds"][mode]
    sources = answer.sources
    if len(sources) == 1:
        s = sources[0]
        opening = texts["opening_one"].format(kind_a=kinds.get(s.study.study_type, kinds["other"]),
                                              year=s.study.year or "an unknown year", n=s.n)
    else:
        opening = texts["opening_many"].format(count=_count_word(len(sources)),
                                               cites="".join(f"[{s.n}]" for s in sources))
    parts = [opening] + [texts["retracted"].format(n=s.n) for s in sources if s.study.retracted]
    closing = _limits_sentence(answer, texts)
    budget = limits.short_words - sum(map(_words, parts)) - _words(closing)
    for source in sources:
        finding = next((i for i in answer.shows if i.citations == [source.n]), None)
        if finding is None:
            continue
        kind = kinds.get(source.study.study_type, kinds["other"])
        if len(sources) == 1:  # the opening already named the study's design and year
            sentence = texts["finding_one"].format(text=_cited(finding.text, source.n))
        else:
            sentence = texts["finding"].format(Kind=_capitalise(kind), year=source.study.year or "an unknown year",
                                               n=source.n, text=as_sentence(finding.text))
        if _words(sentence) > budget and len(parts) > 1:
            break
        parts.append(sentence)
        budget -= _words(sentence)
    if len(sources) == 1 and answer.infers and _words(answer.infers[0].text) + 8 <= budget:
        parts.append(texts["inference"].format(text=_cited(answer.infers[0].text, sources[0].n)))
    if closing:
        parts.append(closing)
    # The wording check, at answer time: a sentence with a certainty word that no cited study uses
    # is dropped (the templates avoid them; this guards any later change of wording).
    said = [u for s in sources for sec in s.study.sections if not sec.generated for u in sec.items]
    return " ".join([parts[0]] + [p for p in parts[1:] if not overclaims(p, said)])


def _limits_sentence(answer: Answer, texts: dict) -> str:
    if not answer.does_not_prove:
        return ""
    authors = [i for i in answer.does_not_prove if not i.generated]
    if not authors:  # only design caveats: say whose words they are not
        item = answer.does_not_prove[0]
        return texts["limits_generated"].format(n=item.citations[0], text=as_sentence(item.text))
    template = texts["limits_one"] if len(answer.sources) == 1 else texts["limits_many"]
    return template.format(text=_cited(authors[0].text, authors[0].citations[0]))


def _cited(text: str, n: int) -> str:
    """'Some text.' -> 'Some text [1].'"""
    text = as_sentence(text)
    return f"{text[:-1]} [{n}]{text[-1]}"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _words(text: str) -> int:
    return len(text.split())


def _count_word(n: int) -> str:
    return ["No", "One", "Two", "Three", "Four", "Five", "Six"][n] if n < 7 else str(n)
