"""Stage 7, write: the bottom line and the short answer, from the evidence set and its verdict.

A `Writer` is a seam: the deterministic template writer here is the default and the fallback; an LLM
writer can sit behind the same seam, its sentences checked by verify.py. Every sentence this writer
produces either carries a citation or is a fixed sentence from prompts/answer.toml."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Callable, Protocol

from .evidence import (CAUSAL_CUES, TRIALS, EvidenceSet, StudyEvidence, both_ways, dangling, direction, disagreements,
                       lead_unit, method_like, prevention_only, side_asked, subject_terms)
from .parse.roles import cues
from .present import as_sentence
from .prompts import table
from .store import ScoredUnit
from .study import Role
from .verify import sentences as verify_sentences
from .understand import asks_yes_no, condition_terms, context_terms, denies_premise, premise_kind, warm_sentence


@dataclass
class Written:
    bottom_line: str
    short_answer: str
    fixed: list[str] = field(default_factory=list)  # uncited sentences taken from prompts/, for verify
    writer: str = "extractive"  # extractive | openai:<model> | fallback
    checks: list = field(default_factory=list)  # (part, verify.Check) of each generated sentence
    why_fallback: str = ""


# Called with ("bottom_line" | "short_answer", sentence) as each sentence is ready to be shown.
OnSentence = Callable[[str, str], None]


class Writer(Protocol):
    name: str

    def write(self, evidence: EvidenceSet, verdict: str, mode: str, on_sentence: OnSentence | None = None) -> Written: ...


class TemplateWriter:
    """Deterministic, offline: plain templates filled from the evidence profiles and quotes."""

    name = "extractive"

    def write(self, evidence: EvidenceSet, verdict: str, mode: str, on_sentence: OnSentence | None = None) -> Written:
        # A yes-or-no question is answered yes, no or maybe first, but only where the bottom line then
        # quotes what a study that tested the subject found: "Possibly" before "the closest study …
        # see what it found below" would rest on nothing shown (a false premise's "No." rests on the verdict).
        opening = opener(evidence, verdict)
        bottom_line, fixed, grounded = self._bottom_line(evidence, verdict, mode, opening)
        if opening and not grounded and verdict != "premise_false":
            bottom_line, fixed, _ = self._bottom_line(evidence, verdict, mode, "")
        return Written(bottom_line, self._short(evidence, table("answer"), SHORT_WORDS[mode]), fixed)

    def _bottom_line(self, evidence: EvidenceSet, verdict: str, mode: str, opening: str) -> tuple[str, list[str], bool]:
        """The bottom line, its fixed sentences, and whether it quotes a finding of a study that tested the
        subject."""
        texts = table("answer")
        t, u = texts["bottom_line"], evidence.understanding
        warm = [warm_sentence()] if u.emotional else []  # kind first, inside the same word budget
        if verdict == "not_studied" and evidence.planned:
            planned = t["not_studied_planned"].format(**_describe(evidence.planned, texts))
            return " ".join([*warm, planned]), [*verify_sentences(planned), warm_sentence()], True
        frame = verdict_sentence(evidence, verdict)
        # What was found answers "what happens / is there / how common" best, so it comes first and
        # the evidence's strength follows; a treatment question is answered by the verdict itself.
        # The opener takes the place of the strength sentence (it says the strength too) or comes
        # before the verdict sentence.
        after = t.get(f"{verdict}_after") if u.question_type != "treatment" else None
        replaces = bool(opening and after)
        if opening and not after:
            frame = f"{opening} {frame}"
        strength = opening if replaces else after or frame
        other = self._other_side(evidence, texts) if verdict == "mixed" else ""
        budget = t["max_words"] - _words(" ".join([*warm, strength, other]))
        premise = self._premise_evidence(evidence, texts, budget) if verdict == "premise_false" else ""
        lead, grounded = (premise, True) if premise else self._lead_sentence(evidence, texts, budget, own_finding=bool(other))
        lead = " ".join(p for p in (plain(lead) if mode == "patient" else lead, other) if p)
        fixed = [*verify_sentences(frame), *verify_sentences(strength), warm_sentence()]
        if after and lead:
            parts = [*warm, strength, lead] if replaces else [*warm, lead, strength]
        else:
            parts = [*warm, frame, lead]
        return " ".join(p for p in parts if p), fixed, grounded

    def _lead_sentence(self, evidence: EvidenceSet, texts: dict, budget: int, own_finding: bool = False) -> tuple[str, bool]:
        """The study the answer rests on, cited, in plain words: what it found, in its own words when
        the finding fits the budget (a paraphrase of direction alone says too little: "found lower
        levels" of what?), labelled as related when the study did not test the subject itself; else its
        direction when that fits the question, else a pointer below (only to a study that tested it).
        With `own_finding` (the other side follows) only the finding its direction was read from is
        quoted, so that the two sides are what disagrees. Also returned: whether the sentence tells what a
        study that tested the subject found (a quote or a plain direction, not a pointer or a related study)."""
        t = texts["bottom_line"]
        lead = evidence.lead
        fill = _describe(lead, texts)
        # For a treatment question, what a trial of another treatment found is never "related": "the
        # symptoms that improved most were cognitive" would read as the asked treatment's effect.
        other_trial = evidence.understanding.question_type == "treatment" and lead.profile.design in TRIALS
        # Within a tight budget the finding is worth more than the study's description, which the short
        # answer and the evidence table give anyway ("found higher levels" says too little).
        keys: tuple[str, ...] = ("quote", "quote_brief") if lead.profile.tested else ("related", "related_brief")
        if fill["lead"] == texts["plain_kinds"]["measured-once_unknown"]:  # not "The closest study, a study, …"
            keys = keys[1:]
        for key in keys:
            room = budget - _words(t[key].format(**fill, finding="")) - 1  # the citation mark is a word
            finding = _finding_for(lead, evidence, room)
            if own_finding and finding and not (lead.profile.finding and finding.id == lead.profile.finding.id):
                finding = None
            related = (finding and finding.score >= RELATED_FINDING_SCORE and lead.study.study_type != "protocol"
                       and not other_trial)
            if finding and (lead.profile.tested or related):
                sentence = t[key].format(**fill, finding=cited(_lowered(finding.text), lead.n))
                if _words(sentence) <= budget:
                    return sentence, key.startswith("quote")
        # A study that did not test the subject, with no finding close to the question, is not
        # offered as "the closest study" (a metformin trial for a rituximab question): the verdict
        # sentence stands alone and the short answer says what each study did and did not test.
        if not lead.profile.tested:
            return "", False
        fits = _says_plainly(lead, evidence.understanding.question_type)
        plain_sentence = (t["found"] if fits else t["see_below"]).format(**fill)
        return (plain_sentence, fits) if _words(plain_sentence) <= budget else ("", False)

    @staticmethod
    def _premise_evidence(evidence: EvidenceSet, texts: dict, budget: int) -> str:
        """For a false premise whose lead study did not test the subject itself (a review), what that
        study reports, cited: a correction alone ("The studies here do not show that it is just lost
        fitness") leaves the person nothing to say back. Any of its findings may serve, if the study
        is about the premise's subject (an oxaloacetate trial says nothing about CBT)."""
        lead = evidence.lead
        template = texts["bottom_line"]["premise_evidence"]
        fill = _describe(lead, texts)
        finding = None if lead.profile.tested else \
            _finding_for(lead, evidence, budget - _words(template.format(**fill, finding="")) - 1, any_score=True)
        if finding is None or not subject_terms(evidence.understanding).found_in(
                " ".join([lead.study.title, *lead.study.items(Role.SUMMARY), finding.text])):
            return ""
        return template.format(**fill, finding=cited(_lowered(finding.text), lead.n))

    @staticmethod
    def _other_side(evidence: EvidenceSet, texts: dict) -> str:
        """For mixed results: the first study that disagrees with the lead one, in plain words."""
        lead = evidence.lead
        for a, b in disagreements(evidence):
            if lead in (a, b):
                return texts["bottom_line"]["other_side"].format(**_describe(b if a is lead else a, texts))
        return ""

    def _short(self, evidence: EvidenceSet, texts: dict, budget: int) -> str:
        """One plain sentence per cited study (what it found, or that it did not test the subject),
        the disagreements, then what the lead study cannot tell you, in its own words; within the
        mode's word budget (the first study and the limits always stay)."""
        t = texts["short_plain"]
        lead = evidence.lead
        causal = bool(CAUSAL_CUES.search(evidence.understanding.search_text))
        limits = lead.limits(causal)[:1]
        closing = [t["limits"].format(text=cited(limits[0].text, lead.n))] if limits else []
        extra = [texts["short"]["retracted"].format(n=s.n) for s in evidence.studies if s.study.retracted]
        for a, b in disagreements(evidence)[:1]:
            da, db = _describe(a, texts), _describe(b, texts)
            extra.append(t["disagreement"].format(cites_a=da["cites"], dir_a=da["dir"], cites_b=db["cites"], dir_b=db["dir"]))
        parts: list[str] = []
        left = budget - sum(map(_words, closing + extra))
        for study in evidence.studies:
            sentence = _study_sentence(study, t, texts, evidence.understanding.question_type)
            if parts and _words(sentence) > left:
                continue
            parts.append(sentence)
            left -= _words(sentence)
        return " ".join(parts + extra + closing)


def opener(evidence: EvidenceSet, verdict: str) -> str:
    """A plain yes, no or maybe for a yes-or-no question, read from the verdict (a false premise is
    answered "No." whatever its wording); empty when the verdict sentence says it already."""
    t, kind = table("answer")["bottom_line"], evidence.understanding.question_type
    if verdict != "premise_false" and not asks_yes_no(evidence.question):
        return ""
    if verdict == "supported" and kind == "treatment" or verdict == "premise_false" and denies_premise(evidence.question):
        return ""  # "It seems to help." says it; "No." to "research showing it's not just deconditioning?" misleads
    key = _verdict_key(evidence, verdict)
    # A refined key ("limited_treatment_no_trial") first, then the question type's ("limited_test"), then the plain verdict's.
    specific = t.get(f"opener_{key}") if key != verdict else None
    return specific or t.get(f"opener_{verdict}_{kind}") or t.get(f"opener_{verdict}", "")


def verdict_sentence(evidence: EvidenceSet, verdict: str) -> str:
    """The plain answer and its strength, from the verdict (no quote, no citation). A subject is named
    only when the lexicon knows it: loose words from the question read badly ("early evidence on read
    putting blood"), so a loosely worded subject is called "this"."""
    t, u = table("answer")["bottom_line"], evidence.understanding
    key = _verdict_key(evidence, verdict)
    # "No trial has tested {subject}" needs a treatment as its subject, not a context ("randomised
    # trial", "severe ME/CFS"): then the subject is not named.
    named = u.named and not (u.question_type == "treatment" and u.subject in context_terms())
    # "pots treatment??": a treatment *for* the condition, not a trial that "tested POTS".
    condition = named and u.question_type == "treatment" and u.subject in condition_terms()
    template = (condition and t.get(f"{key}_condition")) or t.get(key if named else f"{key}_loose") or t.get(key) or t["limited"]
    return template.format(subject=u.name, Subject=u.name[:1].upper() + u.name[1:])


def _verdict_key(evidence: EvidenceSet, verdict: str) -> str:
    """Which verdict sentence fits: by verdict and question type, then what the trials were."""
    t, u = table("answer")["bottom_line"], evidence.understanding
    key = t.get(f"{verdict}_{u.question_type}") and f"{verdict}_{u.question_type}" or verdict
    trials = [s for s in evidence.tested if s.profile.design in TRIALS]
    if key == "limited_treatment" and trials and all(prevention_only(evidence, s) for s in trials):
        return "limited_treatment_prevention"
    if key == "limited_treatment" and not trials:
        return "limited_treatment_no_trial"  # only surveys or case series: say that no trial tested it
    if verdict == "mixed" and len({s.study.id for s in evidence.tested if s.profile.direction != "unclear"}) == 1:
        return "mixed_one_treatment" if u.question_type == "treatment" and trials else "mixed_one"
    if key == "premise_false" and (kind := premise_kind(evidence.question)):
        return f"premise_false_{kind}"
    return key


SHORT_WORDS = {"patient": 120, "clinician": 200}  # the short answer's word budget
# A finding retold in the bottom line: long sentences are what make a text hard to read (Flesch-Kincaid
# grade rises 0.39 a word per sentence), so a shorter finding about the subject is preferred. (With the
# short yes / no / maybe sentences the median grade stays 7.6 on dev at 30 words, and the bottom line
# says more of what the gold says: similarity 0.511 at 22 words, 0.517 at 30.)
FINDING_WORDS = 30
MIN_FINDING_SCORE = 0.35  # cosine of question and finding; on dev, off-topic retold findings scored 0.25-0.27
# A finding of a study that tested the subject, naming the subject, speaks to the question however far
# its wording ("what did DecodeME find?" sits far from every finding; the bottom line pointed below).
TESTED_FINDING_SCORE = 0.28
# A study that did not test the subject leads with its finding only when the finding is this close to
# the question (below it, "blood citrate rose" answered "do I have ME or depression?"); a plan with no
# results never does.
RELATED_FINDING_SCORE = 0.5

# Directions that answer a question of each type in plain words ("it helped" answers a treatment
# question, not a question about a mechanism).
FITTING = {"treatment": {"benefit", "no_benefit", "harm"},
           "other": {"higher", "lower", "no_difference", "absent"}}  # "found signs of it": of what? quoted instead


def _describe(study: StudyEvidence, texts: dict) -> dict:
    kinds, p = texts["plain_kinds"], study.profile
    design = p.design or "other"
    if design == "cross-sectional" and not _asked_people(study):
        design = "measured-once"  # a skin biopsy or a brain scan at one time is not a survey
    kind = kinds.get(design, kinds["other"])
    if "{n}" in kind:
        kind = kind.format(n=f"{p.participants:,}") if p.participants else kinds.get(f"{design}_unknown", kinds["other"])
    words = {**texts["plain_directions"], **(texts["plain_directions_survey"] if design == "cross-sectional" else {})}
    return {"lead": kind, "Lead": kind[:1].upper() + kind[1:], "cites": f"[{study.n}]",
            "dir": words.get(p.direction, words["unclear"])}


def _asked_people(study: StudyEvidence) -> bool:
    """Whether a one-time study asked people (a survey or questionnaire) rather than measured them."""
    said = " ".join([study.study.title, study.study.participants or "",
                     *study.study.items(Role.METHODS), *study.study.items(Role.SUMMARY)])
    return re.search(table("answer")["survey"]["cues"], said, re.I) is not None


def _says_plainly(study: StudyEvidence, kind: str) -> bool:
    """Whether "found {direction}" says truly what the study found: a benefit (or none) from a trial or
    a survey for a treatment question, a measured difference from any other design for any other
    question. A trial never "found higher levels in the patients", and a cohort never "found it
    helped"; those studies are quoted in their own words instead."""
    said, design = study.profile.direction, study.profile.design
    if kind == "treatment":  # a survey says what people said helped them; a scan says no such thing
        return said in FITTING["treatment"] and (design in TRIALS or design == "cross-sectional" and _asked_people(study))
    return said in FITTING["other"] and design not in TRIALS and not _also_opposite(study)


def _also_opposite(study: StudyEvidence) -> bool:
    """The study's findings point both ways ("ATP was normal" beside "Complex V worked less well"): one
    plain phrase ("found no clear difference") would misstate it, so its finding is quoted instead."""
    return both_ways({direction(u.text) for u in study.units.get(Role.OBSERVED, [])})


def _study_sentence(study: StudyEvidence, t: dict, texts: dict, kind: str) -> str:
    """What one cited study found: in plain words when its direction is clear, else in its own words."""
    fill = _describe(study, texts)
    if not study.profile.tested:
        return t["untested"].format(**fill)
    finding = study.profile.finding
    if finding and not _says_plainly(study, kind) and not cues("roles", "methods").find(finding.text):
        return t["reports"].format(**fill, finding=as_sentence(finding.text))
    return t["tested"].format(**fill)


def _finding_for(study: StudyEvidence, evidence: EvidenceSet, budget: int, any_score: bool = False):
    """The study's lead finding if it fits the word budget, else its best-ranked finding about the
    subject that does (never one opening with a dangling 'It' or 'These'); when no whole finding fits,
    the first clause of one, chosen the same way."""
    # How a study was done never leads, nor a finding far from the question (retold, it would answer
    # something else: "urinary mannitol" for "why do my legs feel like lead").
    terms = subject_terms(evidence.understanding)
    # (When its direction says it plainly, "found it helped" answers better than a far finding.)
    near_enough = study.profile.tested and not _says_plainly(study, evidence.understanding.question_type)

    def close(u: ScoredUnit) -> bool:
        return any_score or u.score >= MIN_FINDING_SCORE or near_enough and u.score >= TESTED_FINDING_SCORE and terms.found_in(u.text)

    observed = [u for u in study.units.get(Role.OBSERVED, [])
                if not cues("roles", "methods").find(u.text) and not method_like(u.text, retold=True) and close(u)]
    lead, side_ok = study.profile.finding, side_asked(evidence.understanding)

    def pick(candidates: list[ScoredUnit]) -> ScoredUnit | None:
        fitting = [u for u in candidates if _words(u.text) <= min(budget, FINDING_WORDS)]
        if lead and (same := [u for u in fitting if u.id == lead.id]):
            return same[0]
        unit = lead_unit(fitting[:3], terms, side_ok=side_ok)
        return unit if unit and not dangling(unit.text) else None

    # First clauses are cut only when no whole finding fits.
    return pick(observed) or pick([c for u in observed if (c := _first_clause(u))])


# Where a finding joins a second clause to its first: what comes before is still true on its own
# ("IL-6 was higher in patients, while TNF did not differ" -> "IL-6 was higher in patients"), unless an
# "and" clause qualifies it ("…, and the difference disappeared after adjustment"): then it is kept whole.
CLAUSE_BREAK = re.compile(r"(;|,? while|,? whereas|, and) ")
QUALIFIES = re.compile(r"\b(not|no|non\w*|only|adjust\w*|disappear\w*|except|although|however|but|unless|weak\w*|"
                       r"trend\w*|significan\w*|this|these|that|it)\b", re.I)
FINITE = re.compile(r"\b(was|were|is|are|had|has|did|does|showed|found|rose|fell|increased|decreased|differed|"
                    r"improved|worsened|reported|predicted|remained|stayed|correlated|tracked|responded)\b", re.I)


def _first_clause(unit: ScoredUnit) -> ScoredUnit | None:
    """The unit's first clause, quoted as itself, when the unit joins a second one and the first can
    stand alone (it has a verb of its own: "IL-6, TNF, and IL-1β were higher" is a list, not clauses)."""
    head, *rest = CLAUSE_BREAK.split(unit.text, maxsplit=1)  # [head, separator, rest] when it splits
    head = head.rstrip(" ,")
    if not rest or rest[0] == ", and" and QUALIFIES.search(rest[1]) or _words(head) < 5 or not FINITE.search(head):
        return None
    return replace(unit, text=head + ".")


def plain(text: str) -> str:
    """Study words replaced by plain ones (prompts/answer.toml [plain_words]) for a patient's bottom line."""
    for pattern, word in _plain_words():
        text = pattern.sub(word, text)
    return text


@cache
def _plain_words() -> list[tuple[re.Pattern, str]]:
    return [(re.compile(k, re.I), v) for k, v in table("answer")["plain_words"].items()]


def _lowered(text: str) -> str:
    """'Patients had …' -> 'patients had …' after a colon; acronyms and names ('NK cells', 'WASF3') kept."""
    first = text.split(" ", 1)[0]
    return text if first.isupper() or any(c.isupper() for c in first[1:]) or any(c.isdigit() for c in first) else text[:1].lower() + text[1:]


def _words(text: str) -> int:
    return len(text.split())


def _cites(studies: list[StudyEvidence]) -> str:
    return "".join(f"[{s.n}]" for s in studies)


def cited(text: str, n: int) -> str:
    """'Some text.' -> 'Some text [1].'"""
    text = as_sentence(text)
    return f"{text[:-1]} [{n}]{text[-1]}"
