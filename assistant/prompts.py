"""User-facing texts live as files in prompts/ so their wording can change without touching code."""
from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"


@cache
def table(name: str) -> dict:
    """The entries of prompts/<name>.toml."""
    return tomllib.loads((PROMPTS_DIR / f"{name}.toml").read_text(encoding="utf-8"))
