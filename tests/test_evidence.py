"""The evidence layer without a model: understanding, profiles, verdicts, the writer and verify, and
compose as a pure function of an EvidenceSet (built here by hand from real corpus entries)."""
from pathlib import Path

import pytest

from assistant.compose import compose
from assistant.evidence import EvidenceSet, StudyEvidence, direction, participants, profile, subject_terms, verdict
from assistant.parse import load_corpus
from assistant.readability import grade
from assistant.store import ScoredUnit, UnitId
from assistant.study import Role
from assistant.understand import understand
from assistant.verify import problems

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.fixture(scope="module")
def studies():
    return {Path(s.source_path).stem: s for s in load_corpus([CORPUS]).studies}


def evidence_for(question, studies, stems):
    """An EvidenceSet over the given entries, units in reading order with falling scores."""
    u = understand(question)
    ev = EvidenceSet(question, u)
    for n, stem in enumerate(stems, start=1):
        study = studies[stem]
        units = {role: [ScoredUnit(UnitId(study.id, role, i), text, 0.9 - 0.01 * i)
                        for i, text in enumerate(study.items(role))] for role in Role}
        ev.studies.append(StudyEvidence(study, n, 0.8, units, profile(study, units, subject_terms(u))))
    return ev


@pytest.mark.parametrize("question, kind, subject", [
    ("does low dose naltrexone actualy work", "treatment", "low-dose naltrexone"),
    ("will i ever get better?? its been 6 yrs", "prognosis", "recovery"),
    ("is it all in my head? my doctor says its just depression", "cause", "psychological cause"),
    ("why do i crash like 2 days after doing to much", "mechanism", "post-exertional malaise"),
])
def test_understanding_maps_lay_words_and_never_refuses_for_wording(question, kind, subject):
    u = understand(question)
    assert (u.question_type, u.subject) == (kind, subject)


def test_premise_and_emotion_are_recognised():
    assert understand("Why does graded exercise therapy cure ME/CFS?").premise
    assert understand("will i ever get better?? its been 6 yrs").emotional
    assert not understand("What did the rapamycin trial find?").premise


@pytest.mark.parametrize("question", [
    "since GET is what cures ME how many weeks before i see results",
    "ME only happens to middle aged women so why has my son been diagnosed",
    "so the big study found THE gene for ME, where do i get tested",
    "Given that deconditioning is the main driver of exercise intolerance, which training protocol is best?",
])
def test_presuppositions_said_in_passing_are_premises(question):
    assert understand(question).premise


@pytest.mark.parametrize("question", [
    "which genes did the big study find?", "is ME more common in women?", "does deconditioning explain exercise intolerance?",
])
def test_asking_about_it_is_no_premise(question):
    assert not understand(question).premise


@pytest.mark.parametrize("text, expected", [
    ("Fatigue improved in both groups, with no significant difference between drug and placebo.", "no_benefit"),
    ("Resting ATP levels in ME/CFS cell lines were normal.", "no_difference"),
    ("Patients had higher lactate than controls.", "higher"),
])
def test_direction_of_a_finding(text, expected):
    assert direction(text) == expected


def test_participants_are_counted_outside_parentheses():
    assert participants("46 people with ME/CFS (35 who had PEM, 11 who had not), 26 healthy controls") == 72
    assert participants("not stated") is None


def test_compose_is_a_pure_function_of_the_evidence(studies):
    stems = [s for s in studies if "rapamycin" in s][:1] + [s for s in studies if "mitochondria" in s][:1]
    ev = evidence_for("Does low-dose rapamycin help ME/CFS?", studies, stems)
    answer = compose(ev, "patient")
    assert answer.status == "answered" and answer.verdict != "none"
    assert [r.n for r in answer.evidence_table] == [s.n for s in answer.sources]
    assert len(answer.bottom_line.split()) <= 45 and grade(answer.bottom_line) <= 10
    for item in answer.shows:
        assert item.text in ev.studies[item.citations[0] - 1].study.items(Role.OBSERVED)
    assert all(not problems(s, ev, []) or s.endswith(".") for s in answer.short_answer.split(". "))


def test_named_subject_must_be_in_the_finding(studies):
    stems = [s for s in studies if "rapamycin" in s][:1]
    ev = evidence_for("does LDN work for ME?", studies, stems)
    assert not ev.studies[0].profile.tested  # a low-dose rapamycin trial did not test low-dose naltrexone
    assert verdict(ev) == "not_studied"
    assert "No trial in the library has tested low-dose naltrexone" in compose(ev, "patient").bottom_line


def test_verify_flags_uncited_sentences_and_overclaims(studies):
    ev = evidence_for("Does rapamycin help?", studies, [s for s in studies if "rapamycin" in s][:1])
    assert "no citation" in problems("Rapamycin works.", ev, [])
    assert problems("This proves that rapamycin cures ME/CFS [1].", ev, [])
    assert "cites a source that is not in the answer" in problems("A trial found it [7].", ev, [])
    assert not problems("A fixed sentence.", ev, ["A fixed sentence."])


def test_a_diagnostic_test_question_is_not_answered_as_settled():
    """'Is there a blood test for ME yet?': studies that tell patients from controls support a
    difference, not a test that diagnoses a person, however many agree."""
    from assistant.evidence import _spec

    asked = _spec()["diagnostic_asked"]
    assert asked.search("is there a blood test for me/cfs yet") and asked.search("can ME be diagnosed with a machine learning test")
    assert not asked.search("do brain scans show anything wrong in ME")
