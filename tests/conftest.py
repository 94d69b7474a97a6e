import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SEED = SHARED / "000_0c16861488545d4e.txt"
SUMMARIES = SHARED / "summaries"
CORPUS = ROOT / "corpus"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data is expected beside the project)")
    return path


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
