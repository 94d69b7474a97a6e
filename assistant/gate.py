"""Stage 5, gate: before retrieval, decide whether a question is a crisis, outside the library's scope,
or asks for doses or a diagnosis. Embedding similarity to described intents (robust to paraphrase
and misspelling) plus multilingual rules (what an English embedding model reads poorly)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .embed import embed_texts
from .prompts import table


@dataclass
class Verdict:
    safety: bool = False
    in_scope: bool = True
    dose: bool = False
    diagnosis: bool = False
    why: list[str] = field(default_factory=list)  # which rule or example decided, for evals and logs


class Intent:
    def __init__(self, spec: dict, model: str, batch: int):
        self.patterns = [re.compile(p, re.I) for p in spec.get("patterns", [])]
        self.threshold = spec.get("threshold", 1.0)
        self.examples = spec.get("examples", [])
        self.vectors = embed_texts(self.examples, model, batch) if self.examples else None

    def match(self, question: str, vector: np.ndarray) -> str | None:
        for pattern in self.patterns:
            if pattern.search(question):
                return f"rule {pattern.pattern}"
        if self.vectors is not None:
            sims = self.vectors @ vector
            best = int(np.argmax(sims))
            if sims[best] >= self.threshold:
                return f"like '{self.examples[best]}' ({sims[best]:.2f})"
        return None


class Gate:
    def __init__(self, model: str = "", batch: int = 64):
        self.model, self.batch = model, batch

    @cached_property
    def _intents(self) -> dict:
        spec = table("gate")
        intents = {name: Intent(spec[name], self.model, self.batch) for name in ("safety", "dose", "diagnosis")}
        scope = spec["scope"]
        intents["domain"] = Intent({"patterns": scope["domain_patterns"]}, self.model, self.batch)
        intents["in"] = embed_texts(scope["in_examples"], self.model, self.batch)
        intents["out"] = embed_texts(scope["out_examples"], self.model, self.batch)
        return intents

    def check(self, question: str, vector: np.ndarray) -> Verdict:
        intents = self._intents
        verdict = Verdict()
        if why := intents["safety"].match(question, vector):
            verdict.safety, verdict.why = True, [f"safety: {why}"]
            return verdict
        if why := intents["domain"].match(question, vector):
            verdict.why.append(f"in scope: {why}")
        else:
            near_in = float(np.max(intents["in"] @ vector))
            near_out = float(np.max(intents["out"] @ vector))
            verdict.in_scope = near_in > near_out
            verdict.why.append(f"scope: in {near_in:.2f} vs out {near_out:.2f}")
        verdict.dose = intents["dose"].match(question, vector) is not None
        verdict.diagnosis = intents["diagnosis"].match(question, vector) is not None
        return verdict


class EvidenceCheck:
    """After retrieval: does any retrieved study really speak to the question's topic?

    Every entry is about ME/CFS, so plain similarity rewards any ME/CFS question. Two signals that
    ignore the disease words instead: the similarity of the question's topic (generic words dropped)
    to the closest unit, and the share of the topic's informative words (IDF-weighted, stemmed) that
    a retrieved study contains. Thresholds are calibrated on evals/ (see README)."""

    def __init__(self, library, min_topic: float, min_coverage: float, strong: float):
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self.library, self.min_topic, self.min_coverage, self.strong = library, min_topic, min_coverage, strong
        self.stem = Stemmer.Stemmer("english").stemWords
        self.generic = set(table("gate")["evidence"]["generic_words"]) | set(STOPWORDS_EN) | STOP_EXTRA
        self.terms = {sid: set(self.stem(_words(" ".join(
            [s.title, *(i for sec in s.sections if not sec.generated for i in sec.items)]))))
            for sid, s in library.studies.items()}
        self.df: dict[str, int] = {}
        for terms in self.terms.values():
            for term in terms:
                self.df[term] = self.df.get(term, 0) + 1

    def topic(self, question: str) -> str:
        """The question without the words every study shares ('Does acupuncture help ME/CFS?' -> 'acupuncture')."""
        kept = [w for w in re.findall(r"[\w'/-]+", question) if w.lower() not in self.generic]
        return " ".join(kept) or question

    def coverage(self, question: str, hits) -> float:
        """IDF-weighted share of the question's informative words found in the studies (together);
        0 for a question with no informative word at all ('ME/CFS?'), which no study can answer."""
        terms = self.stem([w for w in _words(question) if w not in self.generic])
        if not terms:
            return 0.0
        n = len(self.terms)
        idf = {t: np.log((n + 1) / (self.df.get(t, 0) + 0.5)) for t in terms}
        total = sum(idf.values())
        found = set().union(*(self.terms[h.study.id] for h in hits)) if hits else set()
        return sum(idf[t] for t in terms if t in found) / total

    def relevant(self, question: str, topic_vector: np.ndarray, hits) -> tuple[bool, str]:
        if not hits:
            return False, "nothing retrieved"
        # Only the studies the filters let through count: their units, their words.
        rows = np.concatenate([self.library.study_rows[h.study.id] for h in hits])
        topic = float(np.max(self.library.vectors[rows] @ topic_vector))
        coverage = self.coverage(question, hits[:3])
        # A strong overall match may stand in for a low word overlap (paraphrase), but not for none.
        ok = topic >= self.min_topic and coverage > 0 and (
            coverage >= self.min_coverage or hits[0].relevance >= self.strong)
        return ok, f"topic {topic:.2f}, coverage {coverage:.2f}, similarity {hits[0].relevance:.2f}"


STOP_EXTRA = {"does", "do", "did", "is", "are", "was", "were", "can", "could", "should", "would", "will",
              "what", "which", "who", "how", "why", "when", "where", "my", "i", "me", "you", "your", "we",
              "has", "have", "had", "been", "any", "about", "from", "with", "more", "most", "than", "get", "got"}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())
