"""The shared Postgres + pgvector store (assistant/store_pg.py) on a real server: a throwaway Postgres
with pgvector started by the `pgserver` package in a temporary folder (Unix socket only, nothing
installed system-wide). The bundled corpus is built into it once per module, with the vectors of the
FAISS test index (so nothing is embedded twice), and answers are compared with the FAISS store's."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from assistant.cli import main
from conftest import CORPUS, ROOT

pytest.importorskip("llama_index.vector_stores.postgres",
                    reason="needs the postgres extra: pip install -e '.[postgres]' (or '.[dev]')")

from assistant.store_pg import SCHEMA, Database, PostgresLibrary, StoreUnavailable, safe_url  # noqa: E402

# The answer-contract questions (tests/test_answers.py) and the first answerable eval questions.
from test_answers import QUESTIONS, check_contract  # noqa: E402

EVAL_QUESTIONS = 20


@pytest.fixture(scope="module")
def server():
    """A Postgres with pgvector for this module, removed at its end; a skip saying why when it cannot run.
    Its folder is not under pytest's temporary folder: run as root, pgserver runs Postgres as its own
    user, which must be able to reach the folder, and pytest makes its folder private to root."""
    pgserver = pytest.importorskip("pgserver", reason="needs the pgserver package (pip install -e '.[dev]'), "
                                   "which bundles Postgres and pgvector for the tests")
    folder = Path(tempfile.mkdtemp(prefix="atlas-pg-"))
    try:
        srv = pgserver.get_server(folder, cleanup_mode="delete")
        srv.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    except Exception as err:  # no binaries for this platform, no shared memory, ...
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"pgserver could not start a Postgres with pgvector here ({type(err).__name__}: {err})")
    yield srv
    srv.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


def database_url(server, name: str) -> str:
    """A fresh database of the test server, by URL (a Unix socket in the server's folder)."""
    server.psql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name};")
    return server.get_uri(name)


@pytest.fixture(scope="module")
def pg_settings(server, corpus_index):
    """The bundled corpus built into the store (vectors taken from the FAISS test index)."""
    from assistant.index import build_index

    settings = replace(corpus_index, store="postgres", store_url=database_url(server, "answers"))
    summary = build_index([CORPUS], settings, progress=False)
    assert summary.studies >= 50 and summary.embedded_chunks == 0  # seeded from the FAISS index
    return settings


@pytest.fixture(scope="module")
def pg_assistant(pg_settings):
    from assistant.engine import Assistant

    return Assistant(pg_settings)


def cited(answer) -> list[str]:
    return [s.study.id for s in answer.sources]


# --- without a server ----------------------------------------------------------------------------

def test_passwords_are_never_shown():
    assert safe_url("postgresql://atlas:s3cret@db.example:5432/atlas") == "postgresql://atlas:***@db.example:5432/atlas"
    assert "s3cret" not in safe_url("postgresql://atlas@127.0.0.1/atlas?password=s3cret&sslmode=require")
    assert "s3cret" not in safe_url("not a url but:s3cret@host password=s3cret")
    from assistant.settings import Settings

    assert "s3cret" not in repr(Settings(store="postgres", store_url="postgresql://a:s3cret@h/db"))


@pytest.mark.parametrize("url, says", [
    ("", "needs a connection URL"),
    ("mysql://atlas:s3cret@127.0.0.1/atlas", "not a Postgres connection URL"),
    ("postgresql://atlas:s3cret@127.0.0.1:1/atlas", "cannot reach the Postgres store at postgresql://atlas:***@127.0.0.1:1/atlas"),
    ("postgresql://atlas:s3cret@127.0.0.1:1/atlas?bogus_option=1", "cannot reach the Postgres store"),
])
def test_a_bad_url_or_unreachable_server_is_one_line_without_the_password(url, says, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATLAS_STORE", "postgres")
    monkeypatch.setenv("ATLAS_STORE_URL", url)
    for argv in (["ask", "does pacing help?"], ["index", str(CORPUS)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err, err
        assert err.count("\n") == 1 and "Traceback" not in err and "s3cret" not in err, err


def test_store_is_a_checked_choice(monkeypatch):
    from assistant.settings import SettingsError, load_settings

    monkeypatch.setenv("ATLAS_STORE", "sqlite")
    with pytest.raises(SettingsError, match="store"):
        load_settings()


# --- on a real Postgres with pgvector ------------------------------------------------------------

def test_an_empty_database_says_how_to_build_the_library(server):
    with pytest.raises(StoreUnavailable, match="no library in the Postgres store.*atlas-assistant index"):
        PostgresLibrary(database_url(server, "empty"))


@pytest.mark.slow
def test_postgres_answers_follow_the_contract_and_cite_what_faiss_cites(pg_assistant, assistant, answer_schema):
    """Dense retrieval is the same search on both stores; the keyword side differs (Postgres full-text
    search against BM25), so answers agree mostly, not always: every answer follows the contract, each
    contract question keeps FAISS's first study and most of its others, and most answers over the first
    eval questions cite exactly the same studies (README gives the figures for all 352 questions)."""
    for question in QUESTIONS:
        pg, faiss = pg_assistant.ask(question), assistant.ask(question)
        assert pg.status == "answered", question
        check_contract(pg, pg_assistant.library, answer_schema)
        assert cited(pg)[0] == cited(faiss)[0], question
        assert len(set(cited(pg)) & set(cited(faiss))) >= len(cited(faiss)) - 1, (question, cited(pg), cited(faiss))
    lines = (json.loads(line) for line in (ROOT / "evals" / "questions.jsonl").read_text().splitlines() if line.strip())
    questions = [q["question"] for q in lines if not q.get("history")][:EVAL_QUESTIONS]
    same_status = same_studies = 0
    for question in questions:
        pg, faiss = pg_assistant.ask(question), assistant.ask(question)
        same_status += pg.status == faiss.status
        same_studies += pg.status == faiss.status and cited(pg) == cited(faiss)
    assert same_status >= 0.9 * len(questions) and same_studies >= 0.7 * len(questions), (same_status, same_studies)


@pytest.mark.slow
def test_ask_json_from_the_store_validates(pg_settings, pg_assistant, answer_schema, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATLAS_STORE", "postgres")
    monkeypatch.setenv("ATLAS_STORE_URL", pg_settings.store_url)
    assert main(["ask", "--json", QUESTIONS[0]]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, answer_schema)
    assert [s["study_id"] for s in data["sources"]] == cited(pg_assistant.ask(QUESTIONS[0]))


@pytest.mark.slow
def test_filters_are_applied_inside_the_store(pg_assistant):
    from assistant.embed import embed_texts
    from assistant.retrieve import Filters

    library = pg_assistant.library
    question = "exercise and post-exertional malaise"
    vector = embed_texts([question])[0]
    filters = Filters(year_from=2024, study_types=("rct", "cohort", "case-control"))
    hits = library.retrieve(question, vector, filters, top_k=10)
    assert hits and all(filters.admits(h.study) for h in hits)
    some = tuple(list(library.studies)[:2])
    assert {h.study.id for h in library.retrieve(question, vector, Filters(study_ids=some), top_k=10)} <= set(some)
    # Values that are no study's are refused before any SQL is written.
    assert library.retrieve(question, vector, Filters(study_ids=("x'); DROP TABLE atlas.live; --",))) == []
    assert library.retrieve(question, vector, Filters(study_types=("rct') OR ('1'='1",))) == []
    units = library.store.search(vector, 5, admits=lambda s: s.id in some)
    assert len(units) == 5 and {u.id.study_id for u in units} <= set(some)
    assert units == sorted(units, key=lambda u: -u.score)


@pytest.mark.slow
def test_two_processes_answer_from_the_store_at_once(pg_settings, pg_assistant, tmp_path):
    """An `ask --batch` process and this one answer from the same store at the same time (this one keeps
    asking until the other has finished), with the same answers."""
    questions = QUESTIONS[:3] * 3
    batch = tmp_path / "questions.txt"
    batch.write_text("\n".join(questions) + "\n")
    env = {**os.environ, "ATLAS_STORE": "postgres", "ATLAS_STORE_URL": pg_settings.store_url}
    with open(tmp_path / "out.jsonl", "w+") as out, open(tmp_path / "err.txt", "w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "ask", "--json", "--batch", str(batch)],
                                cwd=tmp_path, env=env, stdout=out, stderr=err)
        try:
            here = {q: cited(pg_assistant.ask(q)) for q in questions}
            asked, deadline = 0, time.monotonic() + 240
            while proc.poll() is None and time.monotonic() < deadline:
                question = questions[asked % len(questions)]
                assert cited(pg_assistant.ask(question)) == here[question]
                asked += 1
                time.sleep(0.1)  # leave the other process a core
        finally:
            if proc.poll() is None:
                proc.kill()
        err.seek(0)
        assert proc.wait() == 0, err.read()[-2000:]
        out.seek(0)
        there = [[s["study_id"] for s in json.loads(line)["sources"]] for line in out.read().splitlines()]
    assert there == [here[q] for q in questions] and asked > 0


def corpus_without(folder: Path, leave_out: int) -> Path:
    """The bundled corpus less its last `leave_out` files (all of their vectors are in the store)."""
    folder.mkdir()
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    for path in files[:len(files) - leave_out]:
        shutil.copy(path, folder / path.name)
    return folder


def live(db: Database) -> tuple[str, int]:
    generations = db.sql(f"SELECT count(*) FROM {SCHEMA}.generations")[0][0]
    return db.live(), generations


@pytest.mark.slow
def test_a_reindex_is_seen_and_a_killed_build_is_not(server, pg_settings, tmp_path):
    """A running reader follows a re-index at its next question; an `index` killed while it switches
    (after writing its whole table) leaves the library as it was, and the next build removes its table."""
    from assistant.engine import Assistant
    from assistant.index import build_index

    settings = replace(pg_settings, store_url=database_url(server, "reindex"))
    build_index([CORPUS], settings, progress=False)
    reader = Assistant(settings)
    everything = len(reader.library.studies)
    question = QUESTIONS[0]
    reader.ask(question)

    smaller = corpus_without(tmp_path / "smaller", 5)
    rebuilt = build_index([smaller], settings, progress=False)
    assert rebuilt.embedded_chunks == 0 and rebuilt.studies < everything
    reader.ask(question)
    assert len(reader.library.studies) == rebuilt.studies

    db = Database(settings.store_url)
    before = live(db)
    smallest = corpus_without(tmp_path / "smallest", 10)
    env = {**os.environ, "ATLAS_STORE": "postgres", "ATLAS_STORE_URL": settings.store_url}
    with db.engine.connect() as holder:  # holds `live`, so the build stops at its switch
        holder.exec_driver_sql(f"SELECT * FROM {SCHEMA}.live FOR UPDATE")
        proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "index", str(smallest)], cwd=tmp_path,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while not db.sql("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                             "query LIKE 'INSERT INTO atlas.live%'"):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
                time.sleep(0.2)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        holder.rollback()
    assert live(db) == before  # neither the pointer nor a generation row moved
    tables = db.sql("SELECT count(*) FROM pg_tables WHERE schemaname = :s", {"s": SCHEMA})[0][0]
    assert not reader.library.refresh() and len(reader.library.studies) == rebuilt.studies
    assert reader.ask(question).status == "answered"

    summary = build_index([smallest], settings, progress=False)
    assert any("half-written" in w for w in summary.warnings), summary.warnings
    assert db.sql("SELECT count(*) FROM pg_tables WHERE schemaname = :s", {"s": SCHEMA})[0][0] == tables
    reader.ask(question)
    assert len(reader.library.studies) == summary.studies < rebuilt.studies
    db.close()
    reader.library.close()
