"""BibTeX import (issue 12 item 5): the 3,327 real entries of ../shared/data/bibliography, and crafted
files for each rule."""
from __future__ import annotations

from collections import Counter

from assistant.parse import load_corpus, read_file
from assistant.parse.roles import cues, reading_of
from assistant.study import Pem, Role
from conftest import SHARED, need

BIB = """% an invented export
@article{Tester2021,
  author = {Tester, Ann B. and Fluge, {\\O}ystein and M{\\"u}ller, Jo and others},
  title = {An {Invented} Test of Pacing in {ME/CFS}},
  journal = {Journal of Invented Test Data},
  year = {2021},
  doi = {10.9999/BIB.1},
  pmid = {99000081},
  keywords = {ME/CFS, pacing},
  diagnostic_criteria = {CCC},
  abstract = {Fatigue fell by 20\\% (p < 0.05) in the pacing group. These findings suggest that pacing may help.},
  note = {A reader thinks pacing proves to be a cure.}
}

@misc{Note2020,
  author = {Reader, Rita},
  title = {A metadata-only entry},
  year = {2020},
  pmid = {99000082},
  keywords = {ME/CFS, sleep},
  note = {Sleep was found to be worse in every patient.},
  diagnostic_criteria = {Fukuda}
}

@article{NoTitle2019,
  author = {Nobody, N.},
  year = {2019}
}

@article{Broken2018, title = {Unclosed
"""


def test_crafted_bibtex(tmp_path):
    path = tmp_path / "library.bib"
    path.write_text(BIB)
    studies, problems = read_file(path)
    full, meta = studies
    assert full.authors == ["Tester, Ann B.", "Fluge, Øystein", "Müller, Jo"] and full.et_al
    assert (full.title, full.year, full.doi, full.pmid, full.source_format) == (
        "An Invented Test of Pacing in ME/CFS", 2021, "10.9999/bib.1", "99000081", "bibtex")
    assert full.items(Role.OBSERVED) == ["Fatigue fell by 20% (p < 0.05) in the pacing group."]
    assert full.items(Role.INFERRED) == ["These findings suggest that pacing may help."]
    assert full.pem == Pem.REQUIRED and "diagnostic_criteria = 'CCC'" in reading_of(full).pem_reason
    # the note is a reader's words: it is in no section of the study
    assert not any("reader" in i.lower() for s in full.sections for i in s.items)
    assert any("field 'note' not read" in n for n in reading_of(full).notes)

    assert (meta.pmid, meta.doi, meta.title) == ("99000082", None, "A metadata-only entry")
    assert meta.items(Role.OBSERVED) == [] and meta.items(Role.INFERRED) == []
    assert [s.role for s in meta.sections if not s.generated] == [Role.CONTEXT]
    assert not any("Sleep was found" in i for s in meta.sections for i in s.items)
    assert meta.pem == Pem.NOT_REQUIRED
    assert any("metadata-only" in n for n in reading_of(meta).notes)

    lines = BIB.splitlines()
    assert [p.severity for p in problems] == ["error", "error"]
    assert lines[problems[0].line - 1].startswith("@article{NoTitle2019") and "has no title" in problems[0].message
    assert lines[problems[1].line - 1].startswith("@article{Broken2018") and "cannot be read" in problems[1].message


def test_metadata_only_entry_merges_into_the_abstract_of_the_same_pmid(tmp_path):
    (tmp_path / "a.bib").write_text("@misc{X, title = {Test record (invented)}, pmid = {99000091}, year = {2021}}\n")
    (tmp_path / "b.jsonl").write_text('{"pmid": "99000091", "title": "Test record (invented)", '
                                      '"abstract": "Background: x. Results: Heart rate rose by 25% (p < 0.01)."}\n')
    load = load_corpus([tmp_path])
    (study,) = load.studies
    assert study.source_format == "json" and study.items(Role.OBSERVED) == ["Heart rate rose by 25% (p < 0.01)."]
    assert [p.severity for p in load.problems] == ["warning"]


def test_all_3327_entries_import_or_are_skipped_with_a_reason():
    folder = need(SHARED / "bibliography")
    files = sorted(folder.glob("*.bib"))
    assert len(files) == 29
    entries = sum(f.read_text(encoding="utf-8").count("\n@") + f.read_text(encoding="utf-8").startswith("@")
                  for f in files)
    assert entries == 3327
    load = load_corpus([folder])
    skipped = load.errors
    assert len(load.studies) + len(skipped) == 3327
    assert all(p.line and p.message for p in skipped)
    assert not any("cannot parse this file" in p.message for p in load.problems)
    reasons = Counter("duplicate" if "duplicate study" in p.message else p.message for p in skipped)
    assert reasons["duplicate"] >= 200  # the same paper filed under several topics
    assert reasons["entry 'Varesi2021microbiota' has no title: expected 'title = {…}'"] == 1
    assert len(load.studies) >= 3000
    assert sum(bool(s.pmid) for s in load.studies) >= 2200 and sum(bool(s.doi) for s in load.studies) >= 2800

    with_abstract = [s for s in load.studies if any("abstract" in x.why for x in reading_of(s).sentences)]
    assert 40 <= len(with_abstract) <= 45  # 45 entries carry one, a few of them duplicates
    # many are one-sentence descriptions ('Evaluation of …'), which stay context
    assert sum(bool(s.items(Role.OBSERVED)) for s in with_abstract) >= 10
    interpretation = cues("roles", "interpretation")
    for study in load.studies:
        for item in study.items(Role.OBSERVED):
            assert not interpretation.find(item), item
    # no note of the bibliography became any part of any study
    notes = {line.split("=", 1)[1].strip().strip("{},")[:60] for f in files
             for line in f.read_text(encoding="utf-8").splitlines() if line.strip().startswith("note")}
    text = " ".join(i for s in load.studies for x in s.sections for i in x.items)
    assert len(notes) > 2000 and not [n for n in notes if len(n) > 40 and n in text]
