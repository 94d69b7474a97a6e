"""Importers for the other corpus formats: Markdown summaries, PubMed MEDLINE text and JSON / JSONL,
format detection from content, and merging one study read in two formats."""
import json
import re
import shutil
from pathlib import Path

import pytest

from assistant.parse.split import split_sentences as sentences
from assistant.cli import main
from assistant.parse import load_corpus, read_file
from assistant.parse.roles import reading_of
from assistant.study import Pem, Role
from conftest import CORPUS, SHARED, SUMMARIES, need

FIXTURES = Path(__file__).parent / "fixtures"
RECORDS = SHARED / "pubmed" / "records.json"
# The three trial-registration summaries use their own headings (Overview, Purpose of the Trial, …)
# and none of the summary headings, so they have no sections to index.
TRIAL_REGISTRATIONS = ("PreVitaCOV", "Vericiguat", "Methylprednisolone")


def summary(name_start: str) -> Path:
    return next(need(SUMMARIES).glob(f"{name_start}*.md"))


# ------------------------------------------------------------------------------ Markdown summaries

def test_all_269_summaries_import_with_their_metadata(capsys):
    files = sorted(need(SUMMARIES).glob("*.md"))
    assert len(files) == 269
    studies, problems = [], []
    for path in files:  # one file at a time: any exception fails the test with the file named
        found, found_problems = read_file(path)
        studies += found
        problems += found_problems
    errors = [p for p in problems if p.severity == "error"]
    assert len(studies) == 266
    assert sorted(Path(e.file).name.split("_")[-1][:12] for e in errors) == sorted(
        Path(f).name.split("_")[-1][:12] for f in files if any(t in f.name for t in TRIAL_REGISTRATIONS))
    assert all("no sections" in e.message and e.line for e in errors)
    counts = {field: sum(1 for s in studies if getattr(s, field))
              for field in ("doi", "authors", "journal", "year", "url", "pmid")}
    with capsys.disabled():
        print(f"\nsummaries: {len(files)} files, {len(studies)} studies, " +
              ", ".join(f"{k} {v}" for k, v in counts.items()))
    assert counts["doi"] >= 220
    assert counts["authors"] >= 260 and counts["journal"] >= 260 and counts["year"] == len(studies)
    assert all(s.source_format == "markdown" and s.study_type for s in studies)
    assert all(not s.doi or s.id == f"doi:{s.doi}" for s in studies)
    # a review whose "findings" are all interpretation ('suggests', 'may'), a trial registration or a
    # funding announcement has no observed items
    assert sum(bool(s.items(Role.OBSERVED)) for s in studies) >= 230


def test_summary_fields_and_roles():
    path = summary("2019-07-04_Post-Exertional_Malaise")
    (study,), problems = read_file(path)
    assert problems == []
    assert study.title.startswith("Post-Exertional Malaise Is Associated with Hypermetabolism")
    assert study.authors == ["McGregor, Neil R.", "Armstrong, Christopher W.", "Lewis, Donald P.",
                             "Gooley, Paul R."]
    assert (study.journal, study.year, study.doi, study.url) == ("Diagnostics", 2019,
                                                                 "10.3390/diagnostics9030070", None)
    assert study.id == "doi:10.3390/diagnostics9030070"
    # the observed items are the sentences under "What has been found?", less the interpretation
    text = path.read_text(encoding="utf-8")
    found = re.search(r"## What has been found\?\n\n(.+?)\n\n##", text, re.S).group(1)
    assert study.items(Role.OBSERVED) == sentences(found)[:3]
    assert sentences(found)[3].startswith("These findings point towards") and sentences(found)[3] in \
        study.items(Role.INFERRED)
    observed = study.section(Role.OBSERVED)
    assert observed.heading == "What has been found?"
    assert text.splitlines()[observed.line - 1] == "## What has been found?"
    # 'What was researched?' says what this study did: the learned layer reads such lines as its summary
    # or its methods (as the blind labellers did), so only 'Why was it researched?' stays background.
    assert [s.heading for s in study.sections if s.role == Role.CONTEXT] == ["Why was it researched?"]
    assert all(s.role in (Role.SUMMARY, Role.METHODS) and s.why.startswith("learned from labelled")
               for s in reading_of(study).sentences if s.cue_role == Role.CONTEXT and s.role != Role.CONTEXT)
    assert study.section(Role.METHODS).items[0].startswith("This was an observational study")
    assert any(i.startswith("This study investigated") for i in study.items(Role.SUMMARY))
    assert any("This research provides a potential" in i for i in study.items(Role.SUMMARY) + study.items(Role.INFERRED))
    # Discussion: the stated limits are the source's own not-proven words, not generated caveats
    not_proven = study.section(Role.NOT_PROVEN)
    assert not_proven.heading == "Discussion" and not not_proven.generated
    assert not_proven.items[0].startswith("The authors acknowledge several limitations, including the small")
    assert study.items(Role.OPEN_QUESTION)[-1].startswith("The researchers call for future studies")
    assert study.items(Role.INFERRED)[-2].startswith("The authors conclude that PEM is associated")
    assert not any(s.generated for s in study.sections)


@pytest.mark.parametrize("name_start, host", [
    ("2024-10-22_Immune_Exhaustion", "pmc.ncbi.nlm.nih.gov"),        # [DOI](https://pmc…)
    ("2025-07-18_Low_Dose_Sirolimus", "clinicaltrials.gov"),         # [DOI](https://clinicaltrials…)
])
def test_link_labelled_doi_that_is_not_a_doi_is_a_url(name_start, host):
    path = summary(name_start)
    assert f"[DOI](https://{host}" in path.read_text(encoding="utf-8")
    (study,), _ = read_file(path)
    assert study.doi is None and study.url.startswith(f"https://{host}/")
    assert not study.id.startswith("doi:")


def test_pubmed_link_gives_url_and_pmid():
    (study,), _ = read_file(summary("2026-05-13_Cardiopulmonary_exercise"))
    assert study.url == "https://pubmed.ncbi.nlm.nih.gov/42212259/"
    assert study.pmid == "42212259" and study.doi is None and study.id == "pmid:42212259"


def test_design_caveats_only_for_summaries_that_state_no_limits():
    studies = [s for p in sorted(need(SUMMARIES).glob("*.md")) for s in read_file(p)[0]]
    own = [s for s in studies if any(x.role == Role.NOT_PROVEN and not x.generated for x in s.sections)]
    generated = [s for s in studies if any(x.generated for x in s.sections)]
    assert own and generated and not set(map(id, own)) & set(map(id, generated))
    assert all(x.role == Role.NOT_PROVEN and x.heading == "Limits that follow from the study design"
               for s in generated for x in s.sections if x.generated)


def test_pem_from_the_criteria_participants_met(tmp_path):
    (study,), _ = read_file(summary("2025-09-16_Solriamfetol"))  # "met the 2015 IOM diagnostic criteria"
    assert study.pem == Pem.REQUIRED
    (study,), _ = read_file(summary("2019-07-04_Post-Exertional_Malaise"))
    assert study.pem == Pem.UNKNOWN
    (study,), _ = read_file(need(SHARED / "summaries-2").glob("2025-09-26_The_gut_microbial*").__next__())
    assert study.pem == Pem.NOT_REQUIRED  # Fukuda only
    # a guideline that lists criteria is not a study whose participants met them
    (study,), _ = read_file(summary("2015-02-10_Beyond_Myalgic"))
    assert study.pem == Pem.UNKNOWN


MARKDOWN = """---
title: "An invented test summary"
created: '2020-05-01'
published: '2021-06-02'
---

<details>
<summary>Tester et al. (2021)</summary>

- **Authors:** Ann B. Tester, Consortium for Test Data
- **Publisher:** Journal of Invented Test Data
- **Link:** [DOI](https://doi.org/10.9999/MD.1)

</details>

## Summary

A short invented overview.

## What has been found?

One thing was measured. Another thing was not.
"""


def test_markdown_metadata_from_crafted_file(tmp_path):
    path = tmp_path / "s.md"
    path.write_text(MARKDOWN)
    (study,), problems = read_file(path)
    assert problems == []
    assert study.authors == ["Tester, Ann B.", "Consortium for Test Data"]  # institutions as written
    assert (study.year, study.doi, study.journal) == (2021, "10.9999/md.1", "Journal of Invented Test Data")
    assert study.items(Role.OBSERVED) == ["One thing was measured.", "Another thing was not."]


@pytest.mark.parametrize("content, line, severity, words", [
    (MARKDOWN.replace("---\n", "", 1), 1, "error", "no front matter"),
    ("---\ntitle: x\n", 1, "error", "front matter is not closed"),
    (MARKDOWN.replace('title: "An invented test summary"', "tags: [a]"), 1, "error", "no title"),
    (MARKDOWN.replace("title: \"An", "title: [\"An"), 2, "error", "front matter is not valid YAML"),
    (MARKDOWN.replace("## What has been found?", "## Results found"), 20, "warning",
     "unknown section heading 'Results found': expected one of the summary headings; the closest is"),
    (MARKDOWN.split("## Summary")[0], 6, "error", "no sections"),
])
def test_markdown_problems_name_file_line_and_problem(tmp_path, content, line, severity, words):
    path = tmp_path / "bad.md"
    path.write_text(content)
    load = load_corpus([path])
    problem = load.problems[0]
    assert (problem.file, problem.line, problem.severity) == (str(path), line, severity)
    assert words in problem.message
    if "heading" in words:
        assert content.splitlines()[line - 1] == "## Results found"
    assert len(load.studies) == (1 if severity == "warning" else 0)


def test_unknown_heading_names_the_closest_known_heading(tmp_path):
    path = tmp_path / "s.md"
    path.write_text(MARKDOWN.replace("## What has been found?", "## What was found?"))
    (study,), (problem,) = read_file(path)
    assert "the closest is 'What has been found?'" in problem.message
    assert study.items(Role.OBSERVED) == []  # the unknown section's text is not given a role


# ----------------------------------------------------------------------------------- PubMed JSON

def test_the_72_pubmed_records_import():
    studies, problems = read_file(need(RECORDS))
    assert problems == [] and len(studies) == 72
    papers = json.loads(RECORDS.read_text(encoding="utf-8"))["papers"]
    assert [s.pmid for s in studies] == [p["pmid"] for p in papers]
    assert all(s.id == f"pmid:{s.pmid}" and s.year == 2025 and s.source_format == "json" for s in studies)
    assert all(s.doi is None and s.journal is None for s in studies)  # the file has neither
    first = studies[0]
    assert first.authors == ["Oka", "Lkhagvasuren", "Yamada"]  # surnames only, kept as given
    assert first.study_type == "rct"
    # a surname of two words is one surname, not 'Given Surname'
    assert "van Ockenburg" in next(s for s in studies if s.pmid == "40784894").authors
    # background is read as context; the few records without any open with their aim or what they did
    assert sum(not s.items(Role.CONTEXT) for s in studies) <= 5
    # each record's line is where its object starts in the file
    lines = RECORDS.read_text(encoding="utf-8").splitlines()
    for study in studies:
        start = study.sections[0].line
        assert lines[start - 1].strip() == "{"
        assert f'"pmid": "{study.pmid}"' in lines[start]


def test_structured_pubmed_abstract_maps_labels_to_roles():
    studies, _ = read_file(need(RECORDS))
    study = next(s for s in studies if s.pmid == "40647335")  # <b>Background:</b> … <b>Conclusions:</b>
    assert [s.heading for s in study.sections if not s.generated][:4] == ["Background", "Methods", "Results",
                                                                        "Conclusions"]
    assert study.items(Role.OBSERVED)[0].startswith("Compared to Group I, patients with IBS-CFS showed")
    assert study.items(Role.METHODS)[0].startswith("Eighty women were enrolled")
    assert any("warrant further investigation" in i for i in study.items(Role.OPEN_QUESTION))
    assert not any("<b>" in i for s in study.sections for i in s.items)


def test_jsonl_with_one_bad_line(tmp_path):
    path = FIXTURES / "records_one_bad_line.jsonl"
    studies, problems = read_file(path)
    assert [s.pmid for s in studies] == ["99000011", "99000013"]
    assert [(p.file, p.line, p.severity) for p in problems] == [(str(path), 2, "error")]
    assert "invalid JSON on this line" in problems[0].message
    first = studies[0]
    assert first.authors == ["Lovelace, Ada B.", "Babbage, Charles"]  # full names turned round
    assert first.doi == "10.9999/test.2022.011" and first.journal == "Journal of Invented Test Data"
    assert first.items(Role.OBSERVED) == ["Heart rate rose by 25% on standing (p < 0.01)."]
    assert first.items(Role.INFERRED) == ["Standing may be a useful bedside test."]
    assert studies[1].year == 2023 and studies[1].sections[0].line == 3


def test_json_list_with_bad_records(tmp_path):
    path = tmp_path / "records.json"
    path.write_text(json.dumps({"source": "invented test data", "items": [
        {"pmid": "99000021", "title": "Test record (invented): one", "abstract": "Invented test data."},
        "not a record",
        {"pmid": "99000022", "abstract": "A record without a title."},
        {"pmid": "99000023", "title": "Test record (invented): two", "abstract": "Invented test data."},
    ]}, indent=1))
    studies, problems = read_file(path)
    assert [s.pmid for s in studies] == ["99000021", "99000023"]
    lines = path.read_text().splitlines()
    assert [(p.line, lines[p.line - 1].strip()[:5]) for p in problems] == [(9, '"not '), (10, "{")]
    assert "record 2 is not a JSON object" in problems[0].message
    assert "record 3 (PMID 99000022) has no title" in problems[1].message


def test_invalid_json_file_is_one_error_with_its_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n {"pmid": "1", "title": "x"},\n {"pmid": \n]\n')
    studies, (problem,) = read_file(path)
    assert studies == [] and problem.line == 4 and "invalid JSON" in problem.message


# -------------------------------------------------------------------------------- PubMed MEDLINE

def test_medline_export_with_a_malformed_record():
    path = FIXTURES / "medline_export.nbib"
    text = path.read_text()
    studies, problems = read_file(path)
    assert [s.pmid for s in studies] == ["99000001", "99000002", "99000004"]  # the others still indexed
    bad_line = text.splitlines().index("PMID- 99000003") + 1
    assert [(p.file, p.line, p.severity) for p in problems] == [(str(path), bad_line, "error")]
    assert "record PMID 99000003 has no title" in problems[0].message

    structured, unstructured, review = studies
    # continuation lines joined; FAU preferred; AID [doi] normalised; PT decides the type
    assert structured.title == ("Test record (invented): a pacing diary compared with usual care in adults "
                                "with ME/CFS, a randomised trial.")
    assert structured.authors == ["Testperson, Alma J", "van Example, Bram"]
    assert (structured.journal, structured.year, structured.doi) == ("Journal of Invented Test Data", 2021,
                                                                     "10.9999/test.2021.001")
    assert structured.study_type == "rct" and structured.pem == Pem.REQUIRED
    assert structured.items(Role.OBSERVED) == [
        "Crash days fell by 30% in the diary group and by 5% with usual care (p = 0.01).",
        "Step counts did not differ between groups."]
    assert structured.items(Role.INFERRED) == ["A pacing diary may reduce crash days."]
    assert structured.items(Role.OPEN_QUESTION) == [
        "Further studies are needed to test the diary over a full year."]
    assert structured.items(Role.NOT_PROVEN) == ["A limitation was the small sample of forty people."]
    assert not structured.section(Role.NOT_PROVEN).generated

    assert unstructured.doi == "10.9999/test.2019.002"  # upper case in the record
    assert unstructured.study_type == "cohort"  # Observational Study + 'cohort' in the text
    assert unstructured.pem == Pem.NOT_REQUIRED
    assert unstructured.items(Role.OBSERVED) == ["Later sleep onset was associated with worse fatigue scores "
                                                 "(p < 0.05)."]
    assert unstructured.items(Role.INFERRED) == [
        "These results suggest that sleep timing could be a useful target."]
    assert unstructured.items(Role.OPEN_QUESTION) == [
        "Future work should test whether shifting sleep earlier helps."]
    assert unstructured.items(Role.CONTEXT)[0].startswith("This invented abstract is test data only.")
    caveats = [s for s in unstructured.sections if s.generated]
    assert caveats and all(s.role == Role.NOT_PROVEN for s in caveats)

    assert review.authors == ["Reviewer, D.", "Second, E. F."]  # AU only: 'Surname Initials'
    assert (review.journal, review.study_type, review.doi, review.id) == ("Test Rev", "review", None,
                                                                         "pmid:99000004")


# ------------------------------------------------------------------ detection, folders, merging

def test_format_is_read_from_content_not_name(tmp_path):
    shutil.copy(FIXTURES / "medline_export.nbib", tmp_path / "export.txt")
    (tmp_path / "summary.txt").write_text(MARKDOWN)
    (tmp_path / "README.md").write_text("# About this folder\nNot a study.\n")
    load = load_corpus([tmp_path])
    assert load.files == 2  # the README is not read, and not reported
    assert sorted({s.source_format for s in load.studies}) == ["markdown", "medline"]
    assert len(load.studies) == 4 and len(load.errors) == 1


def test_same_format_duplicate_is_still_an_error(tmp_path):
    shutil.copy(FIXTURES / "medline_export.nbib", tmp_path / "a.nbib")
    shutil.copy(FIXTURES / "medline_export.nbib", tmp_path / "b.nbib")
    load = load_corpus([tmp_path])
    assert len(load.studies) == 3
    duplicates = [p for p in load.errors if "duplicate study" in p.message]
    assert len(duplicates) == 3 and all(p.file.endswith("b.nbib") for p in duplicates)


MERGE_RECORD = """PMID- 99000100
TI  - Post-Exertional Malaise Is Associated with Hypermetabolism, Hypoacetylation and
      Purine Metabolism Deregulation in ME/CFS Cases.
AB  - Invented test abstract for the merge test. It stands in for the PubMed record of
      the same paper and is not its real abstract.
FAU - McGregor, Neil R
DP  - 2019 Jul 4
JT  - Diagnostics (Basel, Switzerland)
PT  - Journal Article
AID - 10.3390/DIAGNOSTICS9030070 [doi]
"""


@pytest.mark.parametrize("entry_name, record_name", [("b_entry.txt", "a_record.nbib"),
                                                     ("a_entry.txt", "b_record.nbib")])
def test_same_study_in_two_formats_merges(tmp_path, entry_name, record_name):
    source = CORPUS / "2019_mcgregor_pem_hypermetabolism.txt"
    atlas_alone = load_corpus([source]).studies[0]
    shutil.copy(source, tmp_path / entry_name)
    (tmp_path / record_name).write_text(MERGE_RECORD)
    load = load_corpus([tmp_path])
    assert load.errors == []
    (study,) = load.studies
    assert study.source_format == "atlas" and study.source_path.endswith(entry_name)
    assert study.sections == atlas_alone.sections  # the atlas entry's roles are kept
    assert study.pmid == "99000100" and study.doi == "10.3390/diagnostics9030070"
    assert study.id == "doi:10.3390/diagnostics9030070"
    assert study.journal == "Diagnostics"  # the atlas value is kept when it has one
    (warning,) = load.problems
    assert warning.severity == "warning" and "merged with" in warning.message


def test_validate_runs_over_the_summaries(capsys):
    assert main(["validate", str(need(SUMMARIES))]) == 1  # three trial registrations have no sections
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(r"269 files read: 265 valid studies, 4 errors, \d+ warnings", last)


def test_a_second_copy_of_a_merged_record_is_a_duplicate(tmp_path):
    shutil.copy(CORPUS / "2019_mcgregor_pem_hypermetabolism.txt", tmp_path / "a_entry.txt")
    (tmp_path / "b_record.nbib").write_text(MERGE_RECORD)
    (tmp_path / "c_record.nbib").write_text(MERGE_RECORD)
    load = load_corpus([tmp_path])
    assert len(load.studies) == 1
    assert [(Path(p.file).name, p.severity, p.message.split(":")[0]) for p in load.problems] == [
        ("b_record.nbib", "warning", "merged with " + str(tmp_path / "a_entry.txt")),
        ("c_record.nbib", "error", "duplicate study doi")]


@pytest.mark.parametrize("content, words", [
    ("[]", "no records"),
    ('{"source": "x"}', "no records"),
    ('[{"pmid": "99000031", "title": "Test record (invented)", "authors": 5, "journal": {"x": 1}}]', None),
])
def test_odd_json_never_crashes(tmp_path, content, words):
    path = tmp_path / "odd.json"
    path.write_text(content)
    studies, problems = read_file(path)
    if words:
        assert studies == [] and words in problems[0].message and problems[0].line == 1
    else:
        assert studies[0].authors == [] and studies[0].pmid == "99000031" and studies[0].journal is None
        assert [(p.severity, p.line) for p in problems] == [("warning", 1), ("warning", 1)]
        assert "record 1 (PMID 99000031): field 'authors' is a number (5); expected a list of strings" in \
            problems[0].message
        assert "field 'journal' is an object ({\"x\": 1}); expected a string" in problems[1].message
