"""The bundled corpus: every entry validates, cites a real study, and is written in our own words."""
import re
import sys

import pytest

from assistant.parse import load_corpus
from assistant.study import Role, normalise_doi
from conftest import CORPUS, ROOT, SUMMARIES, need

sys.path.insert(0, str(ROOT / "tools"))
from own_words import copied_runs  # noqa: E402


@pytest.fixture(scope="module")
def corpus():
    return load_corpus([CORPUS])


def summary_facts():
    """(title, doi) of every shared summary, read straight from the files."""
    facts = []
    for path in sorted(need(SUMMARIES).glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title = re.search(r'^title:\s*"?(.*?)"?\s*$', text, re.M).group(1)
        doi = re.search(r"doi\.org/(10\.\S+)", text)
        facts.append((title, normalise_doi(doi.group(1)) if doi else None))
    return facts


def squash(text):
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def test_corpus_validates_with_at_least_50_studies(corpus):
    assert corpus.problems == []
    assert len(corpus.studies) >= 50
    assert corpus.files == len(corpus.studies)


def test_every_entry_has_all_roles_and_a_doi_except_the_seed_study(corpus):
    for study in corpus.studies:
        roles = {s.role for s in study.sections}
        assert {Role.SUMMARY, Role.OBSERVED, Role.INFERRED, Role.OPEN_QUESTION, Role.NOT_PROVEN} <= roles, study.source_path
        assert study.year and study.journal and study.authors, study.source_path
        if study.doi is None:
            assert study.authors[0].startswith("Meeus") and study.year == 2013


def test_every_doi_and_title_is_a_real_study_in_the_shared_summaries(corpus):
    facts = summary_facts()
    by_doi = {doi: title for title, doi in facts if doi}
    for study in corpus.studies:
        if study.doi is None:
            continue
        assert study.doi in by_doi, f"{study.source_path}: DOI {study.doi} is not in the shared summaries"
        assert squash(study.title) == squash(by_doi[study.doi]), study.source_path


def test_corpus_is_written_in_our_own_words():
    need(SUMMARIES)
    copied = copied_runs(sorted(CORPUS.glob("*.txt")))
    assert not copied, {str(p): sorted(r)[:2] for p, r in copied.items()}
