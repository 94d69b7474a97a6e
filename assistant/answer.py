"""The answer: what the engine returns and what `ask --json` prints (shared/contracts/answer.schema.json)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .study import Study

ANSWERED, NO_EVIDENCE, OUT_OF_SCOPE, SAFETY = "answered", "no_evidence", "out_of_scope", "safety"
BLOCKS = {"shows": "observed", "infers": "inferred", "does_not_prove": "not_proven",
          "open_questions": "open_question"}


@dataclass
class Item:
    text: str
    role: str
    citations: list[int]
    generated: bool = False

    def contract(self) -> dict:
        data: dict[str, Any] = {"text": self.text, "role": self.role, "citations": self.citations}
        if self.role == "not_proven":
            data["generated"] = self.generated
        return data


@dataclass
class Source:
    n: int
    study: Study
    score: float

    def contract(self) -> dict:
        s = self.study
        return {"n": self.n, "study_id": s.id, "title": s.title, "authors": s.authors, "year": s.year,
                "journal": s.journal, "doi": s.doi, "pmid": s.pmid,
                "url": s.url or (f"https://doi.org/{s.doi}" if s.doi else None),
                "study_type": s.study_type, "pem": s.pem.value, "retracted": s.retracted,
                "score": round(self.score, 4)}


@dataclass
class EvidenceRow:
    """One cited study in the clinician's evidence table."""
    n: int
    design: str | None
    participants: int | None
    pem: str
    tested: bool  # the study tested or measured the question's subject itself
    direction: str  # benefit, no_benefit, harm, higher, lower, no_difference, present, absent, mixed, unclear
    finding: str  # the observed item it rests on ("" when the study reports none on the subject)

    def contract(self) -> dict:
        return {"n": self.n, "design": self.design, "participants": self.participants, "pem": self.pem,
                "tested": self.tested, "direction": self.direction, "finding": self.finding, "citations": [self.n]}


@dataclass
class Disagreement:
    text: str
    citations: list[int]

    def contract(self) -> dict:
        return {"text": self.text, "citations": self.citations}


@dataclass
class Answer:
    question: str
    status: str
    short_answer: str
    question_type: str = "other"
    verdict: str = "none"
    bottom_line: str = ""
    shows: list[Item] = field(default_factory=list)
    infers: list[Item] = field(default_factory=list)
    does_not_prove: list[Item] = field(default_factory=list)
    open_questions: list[Item] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # advice limits, then the not-medical-advice line
    answer_markdown: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    resolved_question: str | None = None  # the follow-up as understood, or misspellings put right, when it differs
    evidence_table: list[EvidenceRow] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    subject: str = ""  # what the question asks about, as understood
    library: dict | None = None  # how current the library is: {"studies": N, "last_sync": date or None}
    writer: str = "extractive"  # who wrote the bottom line and short answer: extractive | openai:<model> | fallback
    checks: list = field(default_factory=list)  # (part, verify.Check) per generated sentence
    why_fallback: str = ""  # why the generated text was replaced by the deterministic one

    def blocks(self) -> dict[str, list[Item]]:
        return {name: getattr(self, name) for name in BLOCKS}

    def contract(self) -> dict:
        data: dict[str, Any] = {"question": self.question, "status": self.status, "question_type": self.question_type,
                "subject": self.subject, "verdict": self.verdict,
                "bottom_line": self.bottom_line or first_sentence(self.short_answer),
                "short_answer": self.short_answer}
        data.update({name: [i.contract() for i in items] for name, items in self.blocks().items()})
        data["evidence_table"] = [row.contract() for row in self.evidence_table]
        data["disagreements"] = [d.contract() for d in self.disagreements]
        data["sources"] = [s.contract() for s in self.sources]
        data["notes"] = self.notes
        data["writer"] = self.writer
        if self.checks:  # what each generated sentence rests on, and what the verifier dropped
            data["sentences"] = [{"part": part, "text": c.text, "citations": c.citations,
                                  "units": [u.key() for u in c.units]} for part, c in self.checks if c.kept]
            data["dropped"] = [{"part": part, "text": c.text, "reasons": c.reasons} for part, c in self.checks if not c.kept]
        if self.why_fallback:
            data["fallback_reason"] = self.why_fallback
        data["answer_markdown"] = self.answer_markdown
        data["timings_ms"] = {k: round(v, 2) for k, v in self.timings_ms.items()}
        if self.resolved_question:
            data["resolved_question"] = self.resolved_question
        if self.library is not None:
            data["library"] = self.library
        return data


def first_sentence(text: str) -> str:
    """The first sentence of a fixed text (the bottom line of a refusal, a crisis text, …)."""
    head = text.strip().split("\n", 1)[0]
    for end in (". ", "? ", "! "):
        if end in head:
            return head.split(end, 1)[0] + end.strip()
    return head
