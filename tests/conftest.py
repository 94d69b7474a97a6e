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
