"""`atlas-assistant sync pubmed` against a fake E-utilities server on 127.0.0.1 (tests/fake_eutils.py):
paging, retractions, updated records, 429 / 500 / dropped connections with retries, resuming,
malformed XML, PMIDs from BibTeX, the summary, then `index` and `ask` over the synced library.
Nothing here reaches the internet: the E-utilities address is the `eutils_url` setting."""
import json
import time
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.parse import read_file
from assistant.pubmed_sync import (STATE, Eutils, SyncError, read_pmids, read_state, record_path,
                                   sync_pubmed)
from assistant.settings import Settings
from conftest import SHARED, need
from fake_eutils import FakeEutils, article_xml, from_record, real_articles, records
from test_robust_index import FAKE, fake, fake_embed  # noqa: F401  (fake: the instant embedder fixture)

EMAIL = "tests@example.org"
DAY1, DAY2 = "2025-06-02", "2025-07-01"
REAL = ["12091962", "9997", "11748933", "11700088", "27797938"]  # the articles of the real efetch responses


@pytest.fixture
def server():
    need(SHARED / "pubmed" / "eutils")
    with FakeEutils(SHARED) as fake_server:
        for xml in real_articles(SHARED).values():
            fake_server.add(xml)
        for record in records(SHARED):
            fake_server.add(from_record(record))
        yield fake_server


@pytest.fixture
def settings(server, tmp_path):
    return Settings(eutils_url=server.url, ncbi_email=EMAIL, eutils_retmax=10,
                    pubmed_library=tmp_path / "library", index_dir=tmp_path / "index", embedding_model=FAKE)


def client(settings, retries=3, **kwargs):
    """Retries without real waiting: the backoff base is a millisecond."""
    return Eutils(settings.eutils_url, settings.ncbi_email, settings.ncbi_api_key, retries=retries,
                  backoff=0.001, max_backoff=0.005, min_interval=0, **kwargs)


def sync(settings, today=DAY1, retries=3, **kwargs):
    return sync_pubmed(settings, progress=False, client=client(settings, retries), today=today, **kwargs)


def files(settings) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(Path(settings.pubmed_library).glob("pubmed-*.json"))}


def study(settings, pmid):
    studies, problems = read_file(record_path(settings.pubmed_library, pmid))
    assert [p for p in problems if p.severity == "error"] == []
    return studies[0]


# --- paging and the records -----------------------------------------------------------------------

def test_paging_reads_every_batch_into_one_file_per_record(server, settings):
    total = len(server.articles)
    summary = sync(settings)
    assert summary.complete and summary.found == total == summary.new
    assert (summary.updated, summary.failed, summary.batches) == (0, 0, -(-total // 10))
    search, = [p for u, p in server.requests if u == "esearch"]
    assert search["usehistory"] == "y" and search["email"] == EMAIL and search["tool"] == "atlas-assistant"
    assert "api_key" not in search and "mindate" not in search  # a first sync has no date window
    fetched = server.fetched()
    assert [int(p["retstart"]) for p in fetched] == list(range(0, total, 10))
    assert {p["WebEnv"] for p in fetched} == {"MCID_FAKE_1"} and {p["retmax"] for p in fetched} == {"10"}
    assert len(files(settings)) == total
    # the structured abstract of a real response keeps its labels, so its results are observed findings
    telomere = study(settings, "27797938")
    assert telomere.pmid == "27797938" and telomere.doi == "10.1136/gutjnl-2016-312510"
    assert telomere.journal == "Gut" and telomere.year == 2017 and telomere.authors[0] == "Bao, Ying"
    assert "<i>" not in telomere.title and telomere.study_type == "cohort" and not telomere.retracted
    assert any("OR 1.72" in item for item in telomere.items("observed"))
    one = records(SHARED)[0]
    assert study(settings, one["pmid"]).title == one["title"]
    state = read_state(settings.pubmed_library)
    assert state["last_sync"] == DAY1 and "pending" not in state


def test_a_second_sync_continues_from_the_last_date_and_an_updated_record_replaces_the_old(server, settings):
    sync(settings)
    before = files(settings)
    changed = records(SHARED)[3]
    server.add(from_record(changed, revised="2025-06-20", title="A corrected title for this trial"), "2025-06-20")
    new = server.add(article_xml("99000001", "Pacing and heart rate monitoring in ME/CFS", "We followed 40 patients.",
                                 ["Newman"], revised="2025-06-25"), "2025-06-25")
    summary = sync(settings, today=DAY2)
    search = [p for u, p in server.requests if u == "esearch"][-1]
    assert (search["datetype"], search["mindate"], search["maxdate"]) == ("mdat", "2025/06/02", "2025/07/01")
    assert (summary.found, summary.new, summary.updated, summary.unchanged) == (2, 1, 1, 0)
    after = files(settings)
    assert set(after) == set(before) | {f"pubmed-{new}.json"}  # replaced, not duplicated
    assert study(settings, changed["pmid"]).title == "A corrected title for this trial"
    assert all(after[name] == text for name, text in before.items() if changed["pmid"] not in name)
    assert read_state(settings.pubmed_library)["last_sync"] == DAY2
    # the same records again: nothing changes
    again = sync(settings, today=DAY2, since="2025-06-10")
    assert (again.found, again.new, again.updated, again.unchanged) == (2, 0, 0, 2) and files(settings) == after


# --- retractions ----------------------------------------------------------------------------------

def test_retracted_records_and_retraction_notices_set_retracted(server, settings):
    flagged = server.add(article_xml("99000010", "Retracted: a treatment study of ME/CFS", "Patients improved.",
                                     ["Smith"], types=("Journal Article", "Retracted Publication"),
                                     comments=[("RetractionIn", "99000011")]))
    linked = server.add(article_xml("99000012", "A cohort study of ME/CFS fatigue", "Fatigue was measured.",
                                    ["Jones"], comments=[("RetractionIn", "99000013")]))
    summary = sync(settings)
    assert summary.retracted == 2 and summary.complete
    assert study(settings, flagged).retracted and study(settings, linked).retracted
    assert not study(settings, REAL[0]).retracted
    saved = json.loads(record_path(settings.pubmed_library, flagged).read_text())
    assert saved["retracted"] is True and saved["retraction_notices"] == ["99000011"]
    # a later notice retracts a record already in the library; the notice itself is no study
    target = records(SHARED)[5]["pmid"]
    notice = server.add(article_xml("99000020", f"Retraction notice for PMID {target}", "", [],
                                    types=("Retraction of Publication",), comments=[("RetractionOf", target)],
                                    revised="2025-06-20"), "2025-06-20")
    later = sync(settings, today=DAY2)
    assert (later.retracted, later.skipped, later.new, later.updated) == (1, 1, 0, 1)
    assert study(settings, target).retracted and not record_path(settings.pubmed_library, notice).exists()
    # the record synced again without the link stays retracted: the notice was read
    server.add(from_record(records(SHARED)[5], revised="2025-07-02"), "2025-07-02")
    assert sync(settings, today="2025-07-02").retracted == 0 and study(settings, target).retracted


def test_medline_exports_mark_retractions_too(tmp_path):
    path = tmp_path / "export.nbib"
    path.write_text("PMID- 1\nTI  - A trial\nAB  - Patients improved.\nPT  - Journal Article\n"
                    "PT  - Retracted Publication\n\nPMID- 2\nTI  - Another trial\nAB  - Nothing changed.\n"
                    "RIN - J Test. 2025;1:1. PMID: 3\n\nPMID- 4\nTI  - A third\nAB  - Fine.\n")
    studies, _ = read_file(path)
    assert [s.retracted for s in studies] == [True, True, False]


# --- faults -------------------------------------------------------------------------------------

def test_429_500_and_a_cut_connection_are_retried(server, settings):
    server.faults = ["ok", "429", "500", "cut", "drop"]
    summary = sync(settings, retries=4)
    assert summary.complete and summary.errors == [] and summary.retries == 4
    assert summary.new == len(server.articles) == len(files(settings))
    assert len(server.fetched()) == summary.batches + 4


def test_backoff_grows_and_gives_up_after_the_last_try(server, settings):
    waits = []
    eutils = Eutils(server.url, EMAIL, retries=3, backoff=0.5, max_backoff=1.5, min_interval=0, sleep=waits.append)
    server.faults = ["500"] * 4
    with pytest.raises(SyncError, match=r"HTTP 500 .*tried 4 times"):
        eutils.fetch("efetch", {"db": "pubmed", "id": "9997"}, "batch 1 of 1")
    assert waits == [0.5, 1.0, 1.5]  # exponential, capped


def test_rate_limit_spaces_requests(server):
    assert Eutils(server.url, EMAIL).min_interval == 0.37
    assert Eutils(server.url, EMAIL, api_key="k").min_interval == 0.1
    eutils = Eutils(server.url, EMAIL, min_interval=0.05)
    started = time.monotonic()
    for _ in range(3):
        eutils.fetch("efetch", {"db": "pubmed", "id": "9997"}, "one record")
    assert time.monotonic() - started >= 0.1


def test_a_dropped_connection_stops_the_run_and_the_same_command_resumes(server, settings):
    server.faults = ["ok", "ok", "drop", "drop", "drop"]  # batch 3 fails on every one of its 3 tries
    first = sync(settings, retries=2)
    assert not first.complete and first.batches_done == 2 and len(files(settings)) == 20
    assert "batch 3 of 8" in first.errors[0] and "the server closed the connection" in first.errors[0]
    assert "continues from this batch" in first.errors[0]
    pending = read_state(settings.pubmed_library)["pending"]
    assert pending["done"] == [0, 1] and "last_sync" not in read_state(settings.pubmed_library)
    before = len(server.fetched())
    second = sync(settings, today="2025-06-03")  # a later day: the run keeps its first date window
    assert second.complete and second.resumed_batches == 2 and second.new == len(server.articles) - 20
    assert [int(p["retstart"]) for p in server.fetched()[before:]] == list(range(20, len(server.articles), 10))
    assert len(files(settings)) == len(server.articles)
    assert read_state(settings.pubmed_library)["last_sync"] == DAY1 == second.until


def test_malformed_xml_is_a_clear_error_and_nothing_written_is_lost(server, settings):
    server.faults = ["ok", "malformed"]
    first = sync(settings)
    assert not first.complete and first.failed == 10 and first.batches_done == first.batches - 1
    error, = first.errors
    assert error.startswith("batch 2 of 8 (records 11-20)") and "malformed XML from efetch" in error
    second_batch = list(server.articles)[10:20]
    assert second_batch[0] in error  # the PMIDs the broken response still shows
    assert "Nothing of this batch was written" in error
    written = files(settings)
    assert len(written) == len(server.articles) - 10
    assert not any(pmid in name for pmid in second_batch for name in written)
    assert read_state(settings.pubmed_library)["pending"]["done"] == [0, *range(2, 8)]
    before = len(server.fetched())
    second = sync(settings)
    assert second.complete and second.new == 10 and second.resumed_batches == 7
    assert [int(p["retstart"]) for p in server.fetched()[before:]] == [10]
    assert all(files(settings)[name] == text for name, text in written.items())


def test_an_error_instead_of_records_is_named_and_the_batch_fetched_again(server, settings):
    server.faults = ["expired"]
    first = sync(settings)
    assert not first.complete and first.failed == 10
    assert first.errors[0].startswith("batch 1 of 8 (records 1-10): E-utilities sent an error instead of records "
                                      "(Unable to obtain query #1)")
    assert sync(settings).complete and len(files(settings)) == len(server.articles)


def test_cli_reports_malformed_xml_and_exits_1(server, settings, monkeypatch, capsys):
    _env(monkeypatch, settings, retmax=40)
    server.faults = ["malformed"]
    assert main(["sync", "pubmed", "--library", str(settings.pubmed_library)]) == 1
    out, err = capsys.readouterr()
    assert "error: batch 1 of 2 (records 1-40): malformed XML" in err
    assert "not finished: run the same command again" in out
    assert main(["sync", "pubmed", "--library", str(settings.pubmed_library)]) == 0
    assert "resumed an unfinished sync: 1 batches were already done" in capsys.readouterr().out


# --- PMID lists -----------------------------------------------------------------------------------

def test_pmids_from_a_bibtex_file(server, settings, tmp_path):
    wanted = [r["pmid"] for r in records(SHARED)[:12]]
    entries = [f"@article{{key{n},\n  title = {{Study {n}}},\n  author = {{Doe, Jane}},\n  year = {{2025}},\n"
               f"  pmid = {{{pmid}}}\n}}\n" for n, pmid in enumerate(wanted)]
    entries.append("@article{nopmid,\n  title = {No PMID here},\n  year = {2020}\n}\n")
    entries.append("@article{gone,\n  title = {Withdrawn from PubMed},\n  pmid = {99999999}\n}\n")
    bib = tmp_path / "export.bib"
    bib.write_text("\n".join(entries))
    summary = sync(settings, pmids_file=bib)
    assert summary.mode == "pmids" and summary.found == 13 and summary.new == 12 and summary.failed == 1
    assert summary.complete and summary.batches == 2
    assert "PMID 99999999: PubMed returned no record" in summary.errors[0]
    assert "1 of 14 entries have no PMID" in summary.notes[0]
    assert [p["id"] for p in server.fetched()] == [",".join(wanted[:10]), ",".join([*wanted[10:], "99999999"])]
    assert sorted(files(settings)) == sorted(f"pubmed-{p}.json" for p in wanted)
    assert not any(u == "esearch" for u, _ in server.requests)


def test_pmid_lists_plain_and_from_the_shared_bibliography(tmp_path):
    plain = tmp_path / "pmids.txt"
    plain.write_text("# my reading list\n41074089, 12091962\nPMID:9997\n\n12091962\n")
    assert read_pmids(plain) == (["41074089", "12091962", "9997"], [])
    plain.write_text("41074089\n10.1000/xyz\n")
    with pytest.raises(SyncError, match=r"pmids.txt:2: '10.1000/xyz' is not a PMID"):
        read_pmids(plain)
    bibliography = need(SHARED / "bibliography")
    gut, _ = read_pmids(bibliography / "gut-microbiome.bib")
    assert "34768601" in gut  # an entry the importer refuses as a study (no title) still gives its PMID
    everything, notes = read_pmids(bibliography)
    assert len(everything) > 2300 and len(set(everything)) == len(everything) and notes


# --- the command, its summary and settings ------------------------------------------------------------

def _env(monkeypatch, settings, retmax=40, key=None):
    monkeypatch.setenv("ATLAS_EUTILS_URL", settings.eutils_url)
    monkeypatch.setenv("ATLAS_NCBI_EMAIL", EMAIL)
    monkeypatch.setenv("ATLAS_EUTILS_RETMAX", str(retmax))
    if key:
        monkeypatch.setenv("ATLAS_NCBI_API_KEY", key)


def test_summary_json_and_the_api_key_never_shown(server, settings, monkeypatch, capsys):
    _env(monkeypatch, settings, key="SECRET-KEY-123")
    assert main(["sync", "pubmed", "--library", str(settings.pubmed_library), "--json",
                 "--query", "fatigue syndrome, chronic[mh]"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert {k: summary[k] for k in ("new", "updated", "retracted", "failed", "complete")} == \
        {"new": len(server.articles), "updated": 0, "retracted": 0, "failed": 0, "complete": True}
    assert summary["query"] == "fatigue syndrome, chronic[mh]" and summary["batches"] == 2
    assert summary["last_sync"] == summary["until"] and summary["errors"] == []
    assert all(p["api_key"] == "SECRET-KEY-123" for _, p in server.requests)
    state = (Path(settings.pubmed_library) / STATE).read_text()
    assert "SECRET" not in out + err + state
    assert "SECRET" not in repr(Settings(ncbi_api_key="SECRET-KEY-123"))
    # plain text: one summary line
    assert main(["sync", "pubmed", "--library", str(settings.pubmed_library)]) == 0
    text = capsys.readouterr().out
    assert f"synced {len(server.articles)} PubMed records" in text and "0 new" in text


def test_what_the_command_refuses_before_contacting_anyone(server, settings, monkeypatch, capsys, tmp_path):
    with pytest.raises(SyncError, match="email"):
        sync_pubmed(Settings(eutils_url=server.url), library=tmp_path / "lib", progress=False)
    with pytest.raises(SyncError, match="expected a date"):
        sync(settings, since="last week")
    with pytest.raises(SyncError, match="either --query or --pmids"):
        sync(settings, query="x", pmids_file=tmp_path / "p.txt")
    with pytest.raises(SyncError, match="--since narrows a search"):
        sync(settings, since="2025-01-01", pmids_file=tmp_path / "p.txt")
    _env(monkeypatch, settings)
    assert main(["sync", "pubmed", "--pmids", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: no such file" in capsys.readouterr().err
    assert server.requests == []


# --- index, ask and the web page over the synced library ----------------------------------------------

def test_sync_then_index_reads_incrementally_and_says_how_current(fake, server, settings):  # noqa: F811
    from assistant.index import build_index
    from assistant.pubmed_sync import currency
    from assistant.retrieve import Library

    retracted = server.add(article_xml("99000030", "A retracted ME/CFS trial", "Patients improved a lot.",
                                       ["Roe"], types=("Retracted Publication",)))
    sync(settings)
    library = settings.pubmed_library
    first = build_index([library], settings, progress=False)
    assert first.studies == len(server.articles) and first.skipped == [] and first.reused_chunks == 0
    opened = Library(settings.index_dir)
    assert currency(opened) == {"studies": len(server.articles), "last_sync": DAY1}
    assert opened.studies["pmid:99000030"].retracted and opened.studies["pmid:99000030"].pmid == retracted
    # an updated record: the next index embeds only its changed chunks
    server.add(from_record(records(SHARED)[0], revised="2025-06-20", title="An updated recumbent yoga trial"),
               "2025-06-20")
    assert sync(settings, today=DAY2).updated == 1
    second = build_index([library], settings, progress=False)
    from assistant.chunk import chunk_study

    assert second.studies == first.studies
    assert second.embedded_chunks == len(chunk_study(study(settings, records(SHARED)[0]["pmid"]))) > 0
    assert second.reused_chunks == second.chunks - second.embedded_chunks
    assert currency(Library(settings.index_dir)) == {"studies": len(server.articles), "last_sync": DAY2}


def test_the_answer_and_the_page_say_how_current_the_library_is(answer_schema):
    from jsonschema import validate

    from assistant.answer import Answer
    from assistant.pubmed_sync import currency_text

    answer = Answer(question="q", status="no_evidence", short_answer="None.")
    answer.library = {"studies": 77, "last_sync": DAY1}
    data = answer.contract()
    validate(data, answer_schema)  # the schema allows properties beyond its own
    assert data["library"] == {"studies": 77, "last_sync": DAY1}

    class Opened:  # what the web page's intro line is made from (assistant/web.py library_line)
        studies = dict.fromkeys(range(1234))
        manifest = {"last_sync": DAY1}

    assert currency_text(Opened()) == f"The library holds 1,234 studies; last PubMed sync: {DAY1}."
    Opened.manifest = {"last_sync": "<img src=x>"}  # only a date is ever shown
    assert currency_text(Opened()).endswith("last PubMed sync: never.")


@pytest.mark.slow
def test_ask_json_over_a_synced_library_with_the_real_model(tmp_path, answer_schema, capsys):
    """sync, index and ask through the CLI with the real embedding model, on a small library."""
    from jsonschema import validate

    need(SHARED / "pubmed" / "eutils")
    with FakeEutils(SHARED) as server:
        for record in records(SHARED)[:12]:
            server.add(from_record(record))
        settings = Settings(eutils_url=server.url, ncbi_email=EMAIL, eutils_retmax=5,
                            pubmed_library=tmp_path / "library", index_dir=tmp_path / "index")
        assert sync(settings).new == 12
    assert main(["index", str(settings.pubmed_library), "--index", str(settings.index_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["studies"] == 12
    assert main(["ask", "Does yoga help people with ME/CFS?", "--index", str(settings.index_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    validate(data, answer_schema)
    assert data["library"] == {"studies": 12, "last_sync": DAY1}
    from assistant.web import Chat, library_line

    chat = Chat(Settings(index_dir=settings.index_dir))
    assert library_line(chat) == f"\n\nThe library holds 12 studies; last PubMed sync: {DAY1}."
    chat.assistant = None
    assert library_line(chat) == ""
