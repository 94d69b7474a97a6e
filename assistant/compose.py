"""Stage 9, compose: the answer, as a pure function of the evidence set. No retrieval, no model.

Items are units of the cited studies' own sections, ranked across studies by their relevance to the
question: `shows` only from observed findings, `infers` only from inferred conclusions,
`does_not_prove` from the not-proven section (or design caveats marked generated), `open_questions`
from remaining questions. The bottom line and short answer come from a `Writer` and are verified."""
from __future__ import annotations

from dataclasses import dataclass

from .answer import ANSWERED, Answer, Disagreement, EvidenceRow, Item, Source
from .evidence import CAUSAL_CUES, EvidenceSet, StudyEvidence, disagreements, verdict
from .parse.design import design_caveats
from .prompts import table
from .study import Role
from .verify import CERTAINTY_WORDS, overclaims, verified  # noqa: F401  (re-exported for callers)
from .writer import OnSentence, TemplateWriter, Writer


@dataclass(frozen=True)
class Limits:
    studies: int
    observed: int  # items in all, across studies
    inferred: int
    not_proven: int  # per study
    open_questions: int


LIMITS = {
    "patient": Limits(studies=3, observed=4, inferred=2, not_proven=1, open_questions=2),
    "clinician": Limits(studies=5, observed=8, inferred=4, not_proven=2, open_questions=3),
}


def is_causal(question: str) -> bool:
    return bool(CAUSAL_CUES.search(question))


def compose(evidence: EvidenceSet, mode: str = "patient", writer: Writer | None = None,
            on_sentence: OnSentence | None = None) -> Answer:
    limits = LIMITS[mode]
    studies = evidence.studies[:limits.studies]
    evidence.studies = studies
    answer = Answer(question=evidence.question, status=ANSWERED, short_answer="",
                    question_type=evidence.understanding.question_type, subject=evidence.understanding.subject,
                    sources=[Source(s.n, s.study, s.relevance) for s in studies])
    # A planned study's "findings" are its plans ("participants are to log symptoms …"): never shown as
    # what the studies show; the bottom line, short answer and evidence table say it has no results.
    answer.shows = _ranked([s for s in studies if s.profile.design != "protocol"], Role.OBSERVED, limits.observed,
                           "observed", lead=True)
    answer.infers = _ranked(studies, Role.INFERRED, limits.inferred, "inferred")
    answer.open_questions = _ranked(studies, Role.OPEN_QUESTION, limits.open_questions, "open_question")
    causal = is_causal(evidence.understanding.search_text)
    for s in studies:
        said = s.limits(causal)  # a causal question gets the limits that speak to cause first
        if said:
            answer.does_not_prove += [Item(u.text, "not_proven", [s.n]) for u in said[:limits.not_proven]]
        elif caveats := design_caveats(s.study):
            answer.does_not_prove += [Item(t, "not_proven", [s.n], generated=True) for t in caveats.items]
    answer.verdict = verdict(evidence)
    answer.evidence_table = [_row(s) for s in studies]
    answer.disagreements = [_disagreement(a, b) for a, b in disagreements(evidence)]
    written = (writer or TemplateWriter()).write(evidence, answer.verdict, mode, on_sentence)
    if written.checks and written.writer != "fallback":  # generated: each sentence already verified
        answer.bottom_line, answer.short_answer = written.bottom_line, written.short_answer
    else:
        answer.bottom_line = verified(written.bottom_line, evidence, written.fixed)
        answer.short_answer = verified(written.short_answer, evidence, written.fixed)
    answer.writer, answer.checks, answer.why_fallback = written.writer, written.checks, written.why_fallback
    return answer


def _ranked(studies: list[StudyEvidence], role: Role, k: int, name: str, lead: bool = False) -> list[Item]:
    """Units of one role ranked across studies (relevance first, not a quota per study); with `lead`,
    each cited study's lead finding is kept so every source shows what it rests on."""
    chosen = [s.profile.finding for s in studies if lead and s.profile.finding] if lead else []
    pool = sorted((u for s in studies for u in s.top(role, k)), key=lambda u: -u.score)
    for unit in pool:
        if len(chosen) >= k:
            break
        if unit not in chosen:
            chosen.append(unit)
    number = {s.study.id: s.n for s in studies}
    return [Item(u.text, name, [number[u.id.study_id]]) for u in chosen]


def _row(s: StudyEvidence) -> EvidenceRow:
    p = s.profile
    return EvidenceRow(n=s.n, design=p.design, participants=p.participants, pem=p.pem, tested=p.tested,
                       direction=p.direction, finding=p.finding.text if p.finding else "")


def _disagreement(a: StudyEvidence, b: StudyEvidence) -> Disagreement:
    texts = table("answer")
    words = texts["plain_directions"]
    text = texts["short_plain"]["disagreement"].format(cites_a=f"[{a.n}]", dir_a=words[a.profile.direction],
                                                       cites_b=f"[{b.n}]", dir_b=words[b.profile.direction])
    return Disagreement(text, [a.n, b.n])
