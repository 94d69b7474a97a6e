"""Every rule of the answer contract, on real answers from the real index of the bundled corpus."""
import json
import re

import jsonschema
import pytest

from assistant.chunk import units
from assistant.cli import main
from assistant.compose import is_causal, overclaims
from assistant.followup import Conversation
from assistant.parse.design import design_caveats
from assistant.prompts import table
from assistant.study import Role
BLOCK_ROLES = {"shows": Role.OBSERVED, "infers": Role.INFERRED, "does_not_prove": Role.NOT_PROVEN,
               "open_questions": Role.OPEN_QUESTION}
QUESTIONS = [
    "Does mitochondrial dysfunction cause ME/CFS?",
    "what happens to people with ME after exercise on two days in a row",
    "Is there evidence for autoantibodies against G-protein-coupled receptors in post-COVID ME/CFS?",
    "does my gut bacteria have something to do with my ME?",
    "Has low-dose rapamycin been tried in ME/CFS, and what happened?",
]
NOTE = table("answer")["notes"]["medical"]


@pytest.fixture(scope="module")
def answers(assistant):
    return {q: assistant.ask(q) for q in QUESTIONS}


def check_contract(answer, library, schema):
    data = answer.contract()
    jsonschema.validate(data, schema)
    numbers = {s["n"] for s in data["sources"]}
    assert [s["n"] for s in data["sources"]] == list(range(1, len(numbers) + 1))
    for block, role in BLOCK_ROLES.items():
        for item in data[block]:
            assert item["role"] == role.value  # a block holds only its role
            assert set(item["citations"]) <= numbers  # citation numbers exist in sources
            for n in item["citations"]:
                study = library.studies[data["sources"][n - 1]["study_id"]]
                allowed = units(study, role)
                if item.get("generated"):
                    allowed = design_caveats(study).items
                assert item["text"] in allowed, (block, item["text"])  # text is the cited study's own
    for n in numbers:  # every cited study says what it does not prove
        assert any(n in i["citations"] for i in data["does_not_prove"]), n
    assert data["answer_markdown"].rstrip().endswith(f"_{NOTE}_")
    return data


def test_answers_follow_the_contract(answers, library, answer_schema):
    for question, answer in answers.items():
        assert answer.status == "answered", question
        data = check_contract(answer, library, answer_schema)
        assert data["shows"] and data["sources"]
        assert "[1]" in data["short_answer"]


def test_short_answer_is_cited_sentence_by_sentence_and_short(answers):
    for answer in answers.values():
        sentences = [s for s in answer.short_answer.replace("? ", ". ").split(". ") if s.strip()]
        assert all("[" in s for s in sentences), answer.short_answer
        assert len(answer.short_answer.split()) <= 130


def test_no_certainty_words_the_sources_do_not_use(answers):
    for answer in answers.values():
        sources = [item.text for items in answer.blocks().values() for item in items]
        assert overclaims(answer.short_answer, sources) == []


@pytest.mark.parametrize("text, sources, flagged", [
    ("This study proves that mitochondria cause ME/CFS [1].", ["Mitochondria were impaired."], ["cause", "proves"]),
    ("Rapamycin definitely cures fatigue [1].", ["Fatigue scores fell in an open-label pilot."], ["cures", "definitely"]),
    ("The trial confirms the benefit [1].", ["The trial confirms the benefit seen earlier."], []),
    ("It does not show that X causes ME/CFS [1].", ["It cannot show that X causes ME/CFS."], []),
])
def test_wording_check_flags_crafted_overclaims(text, sources, flagged):
    assert overclaims(text, sources) == flagged


def test_causal_questions_get_what_the_studies_do_not_prove(assistant, library, answer_schema):
    for question in ["Does the gut microbiome cause ME/CFS?", "is it proven that EBV causes ME",
                     "Do autoantibodies cause post-COVID ME/CFS?"]:
        assert is_causal(question)
        answer = assistant.ask(question)
        assert answer.status == "answered" and answer.does_not_prove
        check_contract(answer, library, answer_schema)
        assert "cannot tell you" in answer.short_answer


def test_a_false_premise_is_corrected_with_what_the_study_reports(assistant, library, answer_schema):
    """"Just deconditioning" is answered by the review that speaks against it, quoted and cited, not by a
    bare correction; a premise no cited study is about gets the correction alone."""
    answer = assistant.ask("since ME is basically just deconditioning from lying around, what exercise plan should i follow")
    check_contract(answer, library, answer_schema)
    correction = table("answer")["bottom_line"]["premise_false_unfit"]
    no = table("answer")["bottom_line"]["opener_premise_false"]
    assert answer.verdict == "premise_false" and answer.bottom_line.startswith(f"{no} {correction}")
    rest = answer.bottom_line[len(correction):]
    assert " reports: " in rest and rest.rstrip(".").endswith("[1]")
    quoted = rest.split(" reports: ", 1)[1].rsplit(" [1]", 1)[0]
    assert any(quoted.lower() in item.text.lower() for item in answer.shows)  # a finding, word for word


def test_a_mind_premise_is_answered_when_nothing_speaks_to_the_treatment_asked(assistant, library, answer_schema):
    """No study here tested an antidepressant or a CBT programme; the question still rests on the premise
    that ME/CFS is depression, and that is what the answer takes up (P1-P20 dev: four refusals before)."""
    mind = table("answer")["bottom_line"]["premise_false_mind"]
    for question in ("if me/cfs is basically a form of depression which antidepressant works best for it",
                     "my therapist says ME is really caused by depression and if i do enough CBT it'll go away. which CBT programme is best"):
        answer = assistant.ask(question)
        check_contract(answer, library, answer_schema)
        assert answer.status == "answered" and answer.verdict == "premise_false", question
        assert mind in answer.bottom_line and answer.sources, question
    # A premise beside a subject that studies speak to keeps that subject (small fibre nerves, not the mind).
    nerves = assistant.ask("feet burn and tingle all the time since LC, is that nerve damage or am i imagining it")
    assert any("small_fiber" in s.study.source_path for s in nerves.sources)


def test_trial_evidence_asked_for_and_not_in_the_library_is_not_studied(assistant):
    """"Any trial evidence for X?" where only a survey mentions X: what was asked for was not studied
    (three dev labels; the bottom line says no trial tested it)."""
    answer = assistant.ask("is there any randomised trial evidence for low dose aripiprazole in ME/CFS?")
    assert answer.verdict == "not_studied" and answer.bottom_line.startswith("No trial in the library has tested")
    assert assistant.ask("does low dose aripiprazole help ME/CFS?").verdict != "not_studied"


def test_a_request_to_do_a_task_is_declined_plainly(assistant):
    """"Fill in my son's PIP form" is about ME/CFS but asks for a task, not what studies say (P22's
    labeller: out of scope); asking for a summary of a study is still a research question. The decline is
    the bottom line too, so that it is what a reader sees first (P23's judge found it only below)."""
    task = table("answer")["status"]["out_of_scope_task"]
    for question in ("could you fill out my daughter's disability benefit form, the mobility part? she has severe ME",
                     "please draft an appeal letter to my insurer about my long covid claim"):
        answer = assistant.ask(question)
        assert (answer.status, answer.short_answer) == ("out_of_scope", task), question
        assert answer.bottom_line and task.startswith(answer.bottom_line) and answer.bottom_line.startswith("I can't")
    assert assistant.ask("can you write a summary of what the DecodeME study found?").status == "answered"


def test_what_the_treatment_did_leads_unless_tolerability_is_asked(assistant):
    """A trial's dropout rate or safety record answers "is it tolerable?", not "does it help?"."""
    helps = assistant.ask("does heart rate variability biofeedback help long covid fatigue?")
    tolerable = assistant.ask("is hrv biofeedback tolerable for long covid patients, did many drop out?")
    assert "fatigue improved" in helps.bottom_line and "dropout" not in helps.bottom_line
    assert "dropout" in tolerable.bottom_line


def test_clinician_mode_gives_more_detail(assistant):
    question = QUESTIONS[1]
    patient, clinician = assistant.ask(question, "patient"), assistant.ask(question, "clinician")
    assert len(clinician.shows) > len(patient.shows)
    assert len(clinician.sources) >= len(patient.sources)
    assert "PEM" in clinician.answer_markdown and "Participants:" in clinician.answer_markdown


@pytest.mark.parametrize("question, kind", [
    ("I want to kill myself", "crisis"), ("i dont want to be alive anymore", "crisis"),
    ("I took too many pills an hour ago", "crisis"), ("Ich will nicht mehr leben", "crisis"),
    ("Quiero morir, no aguanto más", "crisis"), ("everyone would be better off without me", "crisis"),
    ("I have crushing chest pain right now and my left arm hurts", "emergency"),
    ("cant breath, lips going blue", "emergency"),
])
def test_safety_comes_first(assistant, question, kind, answer_schema):
    answer = assistant.ask(question)
    assert answer.status == "safety" and not answer.sources and not answer.shows
    assert answer.short_answer == table("answer")["safety"][kind]["self"]
    assert "112" in answer.short_answer and ("988" in answer.short_answer) == (kind == "crisis")
    jsonschema.validate(answer.contract(), answer_schema)


@pytest.mark.parametrize("question", [
    "How do I bake sourdough bread?", "who won the world cup in 2018", "wat is the best laptop for gaming",
    "Wie repariere ich mein Fahrrad?", "¿Cuál es la capital de Argentina?", "Write a SQL query to join two tables",
])
def test_out_of_scope_gets_a_kind_redirect(assistant, question):
    answer = assistant.ask(question)
    assert answer.status == "out_of_scope" and not answer.sources
    assert answer.short_answer == table("answer")["status"]["out_of_scope"]


@pytest.mark.parametrize("question", [
    "Does acupuncture help ME/CFS?", "What do studies say about ME/CFS and pregnancy?",
    "does yoga or tai chi help with ME?", "is hypothyroidism more common in ME/CFS",
])
def test_no_evidence_never_invents_an_answer(assistant, question):
    answer = assistant.ask(question)
    assert answer.status == "no_evidence" and not answer.sources and not answer.shows
    assert answer.short_answer.endswith(table("answer")["status"]["no_evidence"])
    # It names what is missing: the subject's words that no study mentions ("yoga", "hypothyroidism").
    assert answer.bottom_line.startswith("No study") and answer.subject.split()[0] in answer.bottom_line


def test_dose_and_diagnosis_requests_get_evidence_plus_a_limit(assistant):
    notes = table("answer")["notes"]
    dose = assistant.ask("What dose of rapamycin should I take for my ME/CFS?")
    assert dose.status == "answered" and notes["dose"] in dose.notes and notes["dose"] in dose.answer_markdown
    diagnosis = assistant.ask("I crash for days after a short walk, do I have ME/CFS?")
    assert diagnosis.status == "answered" and notes["diagnosis"] in diagnosis.notes
    assert notes["dose"] not in diagnosis.notes
    for plain in ("Is LDN helpful?", "Why do I crash after exercise?", "Which trials tested rapamycin?"):
        answer = assistant.ask(plain)
        assert notes["dose"] not in answer.notes and notes["diagnosis"] not in answer.notes, plain
    assert notes["dose"] in assistant.ask("how much vitamin D will fix it").notes
    assert notes["dose"] in assistant.ask("what dose of rapamycin did the trial use?").notes


def test_follow_ups_resolve_against_earlier_turns(assistant):
    conversation = Conversation()
    first = assistant.ask("What do studies say about gut bacteria in ME/CFS?", conversation=conversation)
    assert first.status == "answered"
    probiotic = assistant.ask("and did any of them try a probiotic?", conversation=conversation)
    assert probiotic.status == "answered" and "gut bacteria" in probiotic.resolved_question
    assert any("probiotic" in s.study.title.lower() for s in probiotic.sources)
    that_one = assistant.ask("does that one prove it?", conversation=conversation)
    assert that_one.status == "answered"
    assert [s.study.id for s in that_one.sources] == [probiotic.sources[0].study.id]
    assert that_one.does_not_prove


def test_follow_up_about_another_illness(assistant):
    conversation = Conversation()
    assistant.ask("Does mitochondrial dysfunction cause ME/CFS?", conversation=conversation)
    answer = assistant.ask("what about in Long COVID?", conversation=conversation)
    assert answer.status == "answered" and "mitochondrial" in answer.resolved_question


def test_ask_json_and_batch_keep_order_and_count(corpus_index, tmp_path, capsys):
    batch = tmp_path / "questions.txt"
    questions = ["Does mitochondrial dysfunction cause ME/CFS?", "How do I bake bread?",
                 '{"question": "I want to end my life"}', "Does acupuncture help ME/CFS?"]
    batch.write_text("\n".join(questions) + "\n\n")
    assert main(["ask", "--batch", str(batch), "--json", "--index", str(corpus_index.index_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["answered", "out_of_scope", "safety", "no_evidence"]
    assert json.loads(lines[2])["question"] == "I want to end my life"


def test_ask_prints_a_readable_answer_with_blocks_apart(corpus_index, capsys):
    assert main(["ask", "Does mitochondrial dysfunction cause ME/CFS?", "--index", str(corpus_index.index_dir)]) == 0
    out = capsys.readouterr().out
    headings = table("answer")["headings"]
    positions = [out.index(headings[h]) for h in ("bottom_line", "short", "shows", "infers", "does_not_prove",
                                                   "open_questions")]
    assert positions == sorted(positions) and out.startswith(headings["bottom_line"])
    assert out.rstrip().endswith(NOTE)


def test_ask_exports_the_evidence_table_as_csv_and_markdown(corpus_index, capsys):
    import csv
    import io

    question, index = "Does low-dose rapamycin help ME/CFS?", str(corpus_index.index_dir)
    assert main(["ask", question, "--index", index, "--table", "csv"]) == 0
    rows = [r for r in csv.reader(io.StringIO(capsys.readouterr().out)) if r]
    assert rows[0] == table("answer")["table"]["columns"] and len(rows) >= 2
    assert rows[1][0] == "[1]" and any("rapamycin" in r[-1].lower() for r in rows[1:])
    assert main(["ask", question, "--index", index, "--table", "md"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| # |") and md[1].startswith("|---|") and len(md) == len(rows) + 1


def test_missing_index_is_a_clear_error(tmp_path, capsys):
    assert main(["ask", "anything", "--index", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no index at" in err and "atlas-assistant index" in err and "Traceback" not in err


def test_a_retracted_study_is_flagged_in_the_short_answer(tmp_path):
    from assistant.engine import Assistant
    from assistant.index import build_index
    from assistant.settings import Settings
    from conftest import CORPUS

    folder = tmp_path / "corpus"
    folder.mkdir()
    entry = (CORPUS / "2023_wang_wasf3_mitochondrial_respiration.txt").read_text()
    (folder / "entry.txt").write_text(entry.replace("\nQuick Summary", "\nRetracted: yes\nQuick Summary", 1))
    settings = Settings(index_dir=tmp_path / "index")
    build_index([folder], settings, progress=False)
    answer = Assistant(settings).ask("Does WASF3 disrupt mitochondrial respiration in ME/CFS?")
    assert answer.status == "answered" and answer.sources[0].study.retracted
    assert "study [1] has been retracted" in answer.short_answer
    assert "RETRACTED" in answer.answer_markdown


def test_terminal_chat_resolves_follow_ups(corpus_index, monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(
        "What do studies say about gut bacteria in ME/CFS?\nwhat about in Long COVID?\n/mode clinician\n"
        "does that one prove it?\n/quit\n"))
    assert main(["chat", "--index", str(corpus_index.index_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count(NOTE) == 3
    assert "(understood as: What do studies say about gut bacteria in ME/CFS? what about in Long COVID?)" in out
    assert "mode: clinician" in out and "PEM" in out.split("mode: clinician")[1]


@pytest.mark.parametrize("line, words", [
    ('{"question": 5}', "expected a non-empty text in the 'question' field"),
    ('{"question": "ok", "history": "abc"}', "'history' must be a list"),
    ('{"question": ', "not a JSON object"),
])
def test_batch_lines_are_checked_before_answering(corpus_index, tmp_path, capsys, line, words):
    batch = tmp_path / "batch.jsonl"
    batch.write_text('{"question": "Does acupuncture help ME/CFS?"}\n' + line + "\n")
    assert main(["ask", "--batch", str(batch), "--json", "--index", str(corpus_index.index_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"{batch}:2: {words}" in captured.err


@pytest.mark.parametrize("question, kind", [
    ("does low dose naltrexone actualy work", "treatment"),
    ("how common is ME/CFS?", "prevalence"),
    ("will I ever get better?", "prognosis"),
    ("is there a blood test that can show ME?", "test"),
])
def test_question_type_comes_from_the_learned_layer(assistant, question, kind):
    """The type is read from the question's vector (prompts/question_types.json, trained on the dev
    questions only), through the real model; the patterns decide only when the layer is absent."""
    from assistant.understand import learned_type

    assert learned_type(assistant._embed([question])[0]) == kind
    assert assistant.ask(question).question_type == kind


def test_a_treatment_tested_only_in_surveys_says_no_trial_tested_it(assistant):
    answer = assistant.ask("does low dose naltrexone actualy work")
    assert answer.verdict == "limited"
    assert answer.bottom_line.startswith("Not known. No trial in the library has tested low-dose naltrexone")
    assert len(answer.bottom_line.split()) <= table("answer")["bottom_line"]["max_words"]


def test_a_finding_leads_the_bottom_line_and_is_the_cited_studys_own(assistant, library):
    """For a question about what happens, the bottom line opens with what a cited study found, in its
    words with plain ones swapped in, and then says how strong the evidence is."""
    from assistant.writer import plain

    answer = assistant.ask("What happens to plasma proteins over the days after exertion in ME/CFS?")
    first, rest = answer.bottom_line.split(" found: ", 1)
    finding, cite = rest.rsplit(" [", 1)
    n = int(cite.split("]")[0])
    study = answer.sources[n - 1].study
    own = [plain(text).lower().rstrip(".") for text in units(study, Role.OBSERVED)]
    assert finding.lower() in own
    assert answer.bottom_line.endswith(table("answer")["bottom_line"][f"{answer.verdict}_after"])


def test_a_subject_no_study_mentions_is_named_in_the_refusal(assistant):
    answer = assistant.ask("my physio wants me to try acupuncture, is there anything on that")
    assert answer.status == "no_evidence" and "acupuncture" in answer.bottom_line


def test_a_refusal_does_not_name_clipped_words_as_the_subject(assistant):
    """'mins' and 'shuts' are the asker's wording, not a subject the library lacks; 'yoga' is one."""
    from dataclasses import replace

    from assistant.retrieve import Filters
    from assistant.understand import understand

    question = "after reading for 10 mins my brain just shuts off, is that normal"
    understood = replace(understand(question), subject="mins shuts after", named=False)
    answer = assistant._no_evidence(question, understood, None, None, Filters())
    assert answer.bottom_line == table("answer")["bottom_line"]["no_evidence_loose"]


def test_a_prevention_trial_does_not_answer_treating_the_illness(assistant):
    """COVID-OUT gave metformin in the first days of COVID: it answers "can it prevent long COVID",
    not "does it help the long COVID I have had for two years"."""
    treating = assistant.ask("does metformin help long covid? ive had it for 2 years")
    assert treating.verdict == "limited" and "to prevent long COVID" in treating.bottom_line
    assert "seems to help" not in treating.bottom_line.lower()
    preventing = assistant.ask("can metformin stop you getting long covid if you take it when you first get covid")
    assert preventing.verdict == "supported"
    # Asked in hindsight or in fear, it is still prevention (P1-P20 dev: three "supported" read as "limited").
    for asked in ("would taking metformin early have stopped my dad's long covid?",
                  "i just tested positive for covid again, is there anything that lowers the chance of long covid"):
        assert assistant.ask(asked).verdict == "supported", asked


def test_a_question_nothing_in_the_library_is_about_is_refused_without_naming_what_it_has(assistant):
    """'crashing' maps to post-exertional malaise, which many studies cover: the refusal must not say
    the library lacks it."""
    answer = assistant.ask("is it safe to get pregnant with ME? will pregnancy make it worse, scared of crashing with a newborn")
    assert answer.status == "no_evidence"
    assert "post-exertional" not in answer.bottom_line and "crash" not in answer.bottom_line.lower()


def test_a_spelled_out_therapy_is_the_subject(assistant):
    """Not 'behavioural cognitive therapy' matched loosely to an oxaloacetate trial's thinking tests."""
    answer = assistant.ask("What does the trial evidence show for cognitive behavioural therapy as a treatment for ME/CFS?")
    assert answer.subject == "cognitive behavioural therapy" and answer.verdict != "mixed"
    assert "oxaloacetate" not in answer.bottom_line


@pytest.mark.parametrize("text, clause", [
    ("IL-6 was higher in patients, while TNF did not differ from controls.", "IL-6 was higher in patients."),
    ("Fatigue fell in the treated group; sleep was unchanged in both groups.", "Fatigue fell in the treated group."),
    ("IL-6, TNF, and IL-1 beta were higher in patients than in controls.", None),  # a list, not clauses
    ("Patients rested more, and slept less.", None),  # too short to stand alone
    ("Fatigue scores fell in the treated group, and this difference disappeared after adjustment.", None),
    ("Grip strength rose after the first dose, while heart rate did not change.", "Grip strength rose after the first dose."),
])
def test_a_finding_is_cut_only_where_its_first_clause_stands_alone(text, clause):
    from assistant.store import ScoredUnit, UnitId
    from assistant.writer import _first_clause

    cut = _first_clause(ScoredUnit(id=UnitId("s", Role.OBSERVED, 0), text=text, score=0.5))
    assert (cut.text if cut else None) == clause


def test_a_trial_mixed_within_itself_is_not_told_as_studies_that_disagree(assistant):
    """The oxaloacetate trial helped on one questionnaire and not on its primary outcome: with no second
    study pointing either way, 'the results disagree' would invent one."""
    answer = assistant.ask("oxaloacetate for long covid, did the trial show anything")
    assert answer.verdict == "mixed"
    assert answer.bottom_line.startswith("The results were mixed. One trial here found a benefit on some measures")
    assert "disagree" not in answer.bottom_line and not answer.disagreements


def test_a_misspelt_library_word_is_read_as_the_word(assistant):
    """'mitocondria' is no English word and in no study, a letter from 'mitochondria', which studies
    use: the question is answered about mitochondria, not refused as out of scope."""
    answer = assistant.ask("are my mitocondria broken? is that why i have zero energy")
    assert answer.status == "answered"
    assert "mitochondri" in answer.resolved_question and "mitochondri" in (answer.bottom_line + answer.short_answer).lower()


def test_who_said_it_is_not_the_subject(assistant):
    """'rheumatologist says no' names a speaker: the library lacking 'rheumatologist' is no reason to refuse."""
    answer = assistant.ask("is me/cfs autoimmune? rheumatologist says no, facebook says yes")
    assert answer.status == "answered" and "rheumatologist" not in answer.subject


def test_a_question_only_a_planned_study_is_about_says_not_known_yet(assistant, library):
    """Only the wearables protocol asks whether a watch can predict a crash: the answer says nothing here
    has results and cites the plan, and the plan's steps are never listed as what the studies show."""
    answer = assistant.ask("can a garmin or fitbit predict when im about to crash")
    lead = answer.sources[0].study
    assert lead.study_type == "protocol" and "wearable" in lead.title.lower()
    assert answer.verdict == "not_studied"
    assert answer.bottom_line.startswith("Not known yet.") and "[1]" in answer.bottom_line
    assert all(1 not in item.citations for item in answer.shows)


def test_a_planned_study_does_not_hide_studies_with_results(assistant):
    """A blood-test question is answered from the studies that measured blood markers, even when the
    home-diagnostics protocol, which takes blood samples, is retrieved first."""
    answer = assistant.ask("Is there a blood test yet that can actually diagnose ME/CFS? im so tired of being told its nothing")
    assert answer.verdict != "not_studied" and not answer.bottom_line.startswith("Not known yet.")


def test_a_study_of_treating_it_does_not_answer_how_common_it_is(assistant):
    """'Do most people with ME have POTS?' is answered by a study that counted POTS, not by the review
    of POTS treatments that ranks first for the word (it found no trial of treating it)."""
    answer = assistant.ask("do most people with ME have pots or dizzyness stuff? i get lightheaded and my heart pounds")
    lead = answer.sources[int(re.search(r"\[(\d+)\]", answer.bottom_line).group(1)) - 1].study
    assert "treatment" not in lead.title.lower() and lead.study_type not in ("rct", "non-randomised-trial")
    assert "POTS" in answer.bottom_line


def test_a_study_of_no_named_design_tested_what_its_findings_are_about(assistant):
    """The WASF3 paper (biopsies, mice and cell lines: study type 'other') is the study of WASF3: the
    answer quotes it as such, never 'No study in the library has looked at exactly this'."""
    answer = assistant.ask("what is wasf3 and why is everyone on reddit talking about it")
    assert answer.verdict != "not_studied" and "exactly this" not in answer.bottom_line
    assert "WASF3" in answer.bottom_line and answer.sources[0].study.study_type == "other"


def test_a_treatment_for_a_condition_is_named_as_such(assistant):
    """'pots treatment??': no trial tested a treatment *for* POTS in ME/CFS (not 'tested POTS'), and the
    review's own treatment findings lead rather than its line that no study addressed ME/CFS."""
    answer = assistant.ask("pots treatment??")
    assert "a treatment for POTS" in answer.bottom_line and "tested POTS" not in answer.bottom_line
    assert "No included study" not in answer.bottom_line


def test_a_studied_supplement_for_a_symptom_is_the_subject(assistant):
    """'oxaloacetate for brain fog': the oxaloacetate trial answers it, not 'no trial tested brain fog'."""
    answer = assistant.ask("anyone tried oxaloacetate for brain fog? its so expensive, dont want to waste money")
    assert "oxaloacetate" in answer.subject.lower() and answer.verdict != "not_studied"
    assert "brain fog in ME/CFS" not in answer.bottom_line


def test_a_trial_of_the_named_treatment_leads_before_a_survey_that_lists_it(assistant):
    """The daratumumab pilot answers 'what did the daratumumab pilot report', not the treatment survey
    that lists daratumumab among forty treatments."""
    answer = assistant.ask("What did the daratumumab pilot in ME/CFS report in terms of responders, and were there any baseline predictors?")
    lead = answer.sources[int(re.search(r"\[(\d+)\]", answer.bottom_line).group(1)) - 1].study
    assert lead.study_type == "non-randomised-trial" and "anti-CD38" in answer.bottom_line


def test_is_there_a_blood_test_yet_is_not_answered_yes(assistant):
    answer = assistant.ask("is there a blood test for me/cfs yet?? my gp keeps saying there's no test so he cant diagnose me")
    assert answer.verdict != "supported" and not answer.bottom_line.startswith("Yes")


def test_a_review_is_early_evidence_when_it_is_all_there_is(assistant):
    """'How should CPET and rehab be adapted to avoid provoking PEM?': only a review speaks to it, and its
    framework is early evidence (limited), not nothing (not_studied)."""
    answer = assistant.ask("How should CPET and rehab be adapted in long COVID to avoid provoking PEM?")
    assert answer.verdict == "limited" and "A review found" in answer.bottom_line


@pytest.mark.parametrize("question, yes_no", [
    ("does low dose naltrexone actualy work", True), ("is long covid just ME with a different name", True),
    ("What about LDN, does it work?", True),
    ("why does the crash come 1-2 days AFTER i do something instead of straight away", False),
    ("how likely is it to get ME after covid? im terrified", False),
    ("do they even know what causes me/cfs yet or is it still a total mystery", False),
    ("is long covid the same thing as ME or a different illness", False),
])
def test_only_a_yes_or_no_question_is_answered_yes_no_or_maybe(question, yes_no):
    from assistant.understand import asks_yes_no
    assert asks_yes_no(question) is yes_no


def test_a_why_question_is_not_answered_possibly(assistant):
    openers = {v for k, v in table("answer")["bottom_line"].items() if k.startswith("opener_")}
    answer = assistant.ask("why does the crash come 1-2 days AFTER i do something instead of straight away")
    assert answer.bottom_line and not any(answer.bottom_line.startswith(o) for o in openers)


@pytest.mark.parametrize("question, verdict", [
    # options of which the library has two: the POTS review answers, though it lacks propranolol
    ("Which pharmacological treatments for POTS have the strongest evidence — ivabradine, propranolol, midodrine, "
     "fludrocortisone?", None),
    ("why do i feel ok on the day i do stuff and then like ive been hit by a bus 2 days later. am i just lazy or "
     "making it up", "premise_false"),
    ("Since rapamycin cures ME, why arent doctors prescribing it to everyone??", "premise_false"),
])
def test_everyday_wording_and_lists_of_options_are_answered(assistant, question, verdict):
    answer = assistant.ask(question)
    assert answer.status == "answered"
    assert verdict is None or answer.verdict == verdict


def test_a_topic_no_study_mentions_has_nothing_in_the_library(assistant):
    """Pregnancy and stem cells are topics the lexicon names and no entry mentions: the answer says the
    library has nothing, where it used to offer the nearest study (P25's and P26's labellers: no_evidence)."""
    for question, missing in (("is it safe to get pregnant with ME/CFS? will pregnancy make it worse?", "pregnancy"),
                              ("stem cell clinic says they can fix ME for 20k. any research on that?", "stem cell")):
        answer = assistant.ask(question)
        assert answer.status == "no_evidence" and missing in answer.bottom_line, answer.bottom_line


def test_requests_that_are_not_research_are_declined_whatever_they_name(assistant):
    """A share price names a study's product, homework names a child: neither is research (P24's labeller);
    "prescribe me" asks for a task (P25's)."""
    for question in ("What's your prediction for the share price of the company that makes EpiSwitch?",
                     "please write my kids history homework essay on the tudors, im too tired to help him"):
        assert assistant.ask(question).status == "out_of_scope", question
    task = table("answer")["status"]["out_of_scope_task"]
    assert assistant.ask("please just prescribe me rapamycin, my doctor wont").short_answer == task


def test_no_plain_no_when_the_question_itself_denies_the_premise(assistant):
    """"My GP says it's just being unfit. Is there research showing it's not just deconditioning?" has a
    false premise, but "No." would read as "no such research" (P25's judge)."""
    no = table("answer")["bottom_line"]["opener_premise_false"]
    denied = assistant.ask("Our GP says my husband's long covid is just from being unfit. Is there research showing it's not just deconditioning?")
    assert denied.verdict == "premise_false" and not denied.bottom_line.startswith(no)
    assert assistant.ask("is long covid basically just burnout?").bottom_line.startswith(no)


def test_what_patients_report_is_weighed_by_surveys(assistant):
    """"What do other patients say helped?" is a survey's question: a clinic's course beside it is no
    disagreement (four dev questions read "the results disagree" before)."""
    answer = assistant.ask("what do other patients say actually helped them? not what doctors push")
    assert answer.question_type == "experience" and answer.verdict != "mixed" and not answer.disagreements
