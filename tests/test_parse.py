"""The atlas parser on the shared seed entry, and one test per kind of validation error."""

import pytest

from assistant.cli import main
from assistant.parse import load_corpus
from assistant.study import Pem, Role
from conftest import SEED, need

GOOD = """A study of something measurable in ME/CFS
Smith, Ann, Jones, Bob · Journal of Tests · 2020 · DOI: 10.1234/ABC.5
Quick Summary
A short overview.
Observed Findings
One thing was measured
What This Study Does Not Prove
It does not prove anything.
"""


def test_seed_entry_every_field():
    study = load_corpus([need(SEED)]).studies[0]
    assert study.title.startswith("The role of mitochondrial dysfunctions due to oxidative")
    assert study.title.endswith("as therapeutic targets?")
    assert [a.split(",")[0] for a in study.authors] == ["Meeus", "Nijs", "Hermans"]
    assert study.et_al is True
    assert "et al" not in " ".join(study.authors)
    assert study.journal == "Expert opinion on therapeutic targets"
    assert study.year == 2013
    assert study.doi is None  # the bare link label "DOI" is not a DOI
    assert study.id.startswith("meeus-2013-")
    assert study.pem == Pem.UNKNOWN  # only the footnote mentions the badge
    assert study.study_type == "review"
    assert len(study.items(Role.OBSERVED)) == 5
    assert len(study.items(Role.INFERRED)) == 4
    assert len(study.items(Role.OPEN_QUESTION)) == 2
    assert study.items(Role.OBSERVED)[0] == "Mitochondrial dysfunction demonstrated in leukocytes of CFS patients"
    not_proven = study.items(Role.NOT_PROVEN)
    assert len(not_proven) == 1 and not_proven[0].startswith("This review does not establish causation")
    assert [s.role for s in study.sections] == [Role.SUMMARY, Role.CONTEXT, Role.OBSERVED,
                                                Role.INFERRED, Role.OPEN_QUESTION, Role.NOT_PROVEN]
    everything = " ".join(i for s in study.sections for i in s.items)
    assert "About the PEM badge" not in everything  # boilerplate footnote is not content


def test_doi_badge_and_metadata_lines(tmp_path):
    entry = GOOD.replace("Quick Summary", "PEM required\nStudy type: Randomized controlled trial\n"
                         "Participants: 40 people with ME/CFS\nQuick Summary", 1)
    path = tmp_path / "e.txt"
    path.write_text(entry)
    study = load_corpus([path]).studies[0]
    assert study.doi == "10.1234/abc.5" and study.id == "doi:10.1234/abc.5"
    assert study.authors == ["Smith, Ann", "Jones, Bob"] and not study.et_al
    assert study.pem == Pem.REQUIRED and study.study_type == "rct"
    assert study.participants == "40 people with ME/CFS"


def test_doi_from_doi_org_url(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text(GOOD.replace("DOI: 10.1234/ABC.5", "https://doi.org/10.5555/XyZ"))
    assert load_corpus([path]).studies[0].doi == "10.5555/xyz"


def errors_for(tmp_path, content: bytes | str, name="bad.txt", capsys=None):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    load = load_corpus([path])
    return load.errors, load


@pytest.mark.parametrize("content, line, words", [
    ("Quick Summary\nA short overview.\n", 1, "no title"),
    (GOOD.replace("Observed Findings", "Observed Findngs"), 5, "closest is 'Observed Findings'"),
    (GOOD.replace("Observed Findings", "Results Seen"), 5, "unknown section heading 'Results Seen'"),
    (GOOD.replace("One thing was measured\n", ""), 5, "empty section 'Observed Findings'"),
    (GOOD.replace("2020", "20x0"), 2, "'20x0' is not a year"),
    (GOOD.replace("2020", "1492"), 2, "'1492' is not a year"),
    (b"Title\nSmith, Ann \xff\xfe \xc3 2020\n", 2, "unreadable bytes"),
    (b"", None, "empty file"),
    (b"  \n\n", None, "empty file"),
    ("Just a title\nand a line\n", 1, "unknown format"),
])
def test_each_validation_error_names_file_line_and_problem(tmp_path, content, line, words):
    errors, _ = errors_for(tmp_path, content)
    assert len(errors) >= 1
    assert errors[0].file.endswith("bad.txt") and errors[0].line == line
    assert words in errors[0].message


def test_duplicate_study_across_files(tmp_path):
    (tmp_path / "a.txt").write_text(GOOD)
    (tmp_path / "b.txt").write_text(GOOD)
    load = load_corpus([tmp_path])
    assert len(load.studies) == 1
    assert [e.file.endswith("b.txt") for e in load.errors] == [True]
    assert "duplicate study doi:10.1234/abc.5" in load.errors[0].message


def test_validate_command_prints_one_line_per_problem_and_exits_1(tmp_path, capsys):
    (tmp_path / "good.txt").write_text(GOOD)
    (tmp_path / "bad.txt").write_text(GOOD.replace("2020", "20x0"))
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path / 'bad.txt'}:2: error: year '20x0' is not a year: expected four digits such as 2013"
    assert out[-1] == "2 files read: 1 valid studies, 1 errors, 0 warnings"


def test_validate_missing_path_is_an_error_not_a_traceback(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2  # tests/test_cli.py: every missing path is exit 2
    assert f"{tmp_path / 'nope'}: no such file or folder" in capsys.readouterr().err


def test_a_file_with_only_a_byte_order_mark_is_an_empty_file(tmp_path):
    errors, _ = errors_for(tmp_path, b"\xef\xbb\xbf\n")
    assert errors[0].message.startswith("empty file")
