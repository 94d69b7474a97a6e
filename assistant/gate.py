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
