import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The gate's fixed vectors are cached on disk (assistant/vector_cache.py): here in a folder of this test
# session, never the user's cache, and removed when the session ends (it holds a query encoder of
# some megabytes; left behind, every run would leak one).
if "ATLAS_CACHE_DIR" not in os.environ:
    os.environ["ATLAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="atlas-test-cache-")
    atexit.register(shutil.rmtree, os.environ["ATLAS_CACHE_DIR"], ignore_errors=True)

ROOT = Path(__file__).resolve().parents[1]
# The shared data (study files, PubMed records) and the output contracts (JSON schemas) are not part of
# this repository: they sit beside it as ../shared (data/ and contracts/), a read-only checkout that
# every developer and CI has. ATLAS_SHARED_DATA names its data folder when it lives elsewhere; without
# it, every test that needs it is skipped with one line saying what is missing.
SHARED = Path(os.environ.get("ATLAS_SHARED_DATA") or ROOT.parent / "shared" / "data").absolute()
CONTRACTS = SHARED.parent / "contracts"
SEED = SHARED / "000_0c16861488545d4e.txt"
SUMMARIES = SHARED / "summaries"
CORPUS = ROOT / "corpus"
WHERE = ("the shared data and contracts checkout that sits beside the project as ../shared "
         "(set ATLAS_SHARED_DATA to its data folder if it lives elsewhere)")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path}, which is missing: it comes from {WHERE}")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: loads the real embedding model or runs for minutes; "
                                       "`pytest -m 'not slow'` is the fast layer")


# Fixtures that load the real model (and build a real index of the bundled corpus) or start Chromium: a
# test that uses one, directly or through another fixture, is slow whether or not it says so, so the
# fast layer (`pytest -m "not slow"`, `make test-fast`) is the fake-embedder tests alone.
REAL = {"corpus_index", "library", "assistant", "real_gate", "browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def contract(name: str) -> dict:
    """A JSON schema of the shared contracts (../shared/contracts), or a skip naming what is missing."""
    return json.loads(need(CONTRACTS / name).read_text())


@pytest.fixture(scope="session")
def answer_schema():
    return contract("answer.schema.json")


@pytest.fixture(scope="session")
def eval_summary_schema():
    return contract("eval-summary.schema.json")


@pytest.fixture(scope="session")
def index_summary_schema():
    return contract("index-summary.schema.json")


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory):
    """A real index of the bundled corpus on disk, built once per test session."""
    from assistant.index import build_index
    from assistant.settings import Settings

    settings = Settings(index_dir=tmp_path_factory.mktemp("index"))
    summary = build_index([CORPUS], settings, progress=False)
    assert summary.studies >= 50 and summary.skipped == []
    return settings


@pytest.fixture(scope="session")
def library(corpus_index):
    from assistant.retrieve import Library

    return Library(corpus_index.index_dir)


@pytest.fixture(scope="session")
def assistant(corpus_index):
    from assistant.engine import Assistant

    return Assistant(corpus_index)
