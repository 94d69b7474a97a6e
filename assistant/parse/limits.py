"""Limits that keep one hostile or broken file from costing more than itself: a size limit per file,
front matter without YAML aliases, JSON with bounded nesting and integer size.

The size limit is the setting `max_file_bytes` (assistant/settings.py: atlas.toml, or the environment
variable ATLAS_MAX_FILE_BYTES); the commands pass it in, and a caller that does not reads the settings."""
from __future__ import annotations

import json
import re

import yaml

from ..settings import Settings

MAX_FILE_BYTES = Settings.max_file_bytes  # 20 MB: the largest real input here (records.json) is about 0.2 MB
MAX_FRONT_MATTER_CHARS = 64 * 1024
MAX_JSON_DEPTH = 32  # a record list is 3 deep; a structured abstract 4
MAX_INT_DIGITS = 30


class LimitError(ValueError):
    """A file or record beyond a limit; the message says which limit and what to do."""


def max_file_bytes() -> int:
    """The limit the settings give (atlas.toml, ATLAS_MAX_FILE_BYTES), else MAX_FILE_BYTES."""
    try:
        from ..settings import load_settings

        return int(load_settings().max_file_bytes)
    except Exception:  # a settings problem is reported by the command itself, not by the parser
        return MAX_FILE_BYTES


def size_problem(size: int, limit: int) -> str | None:
    if size <= limit:
        return None
    return (f"file too large: {size:,} bytes, over the limit of {limit:,} bytes per file "
            "(setting max_file_bytes, or ATLAS_MAX_FILE_BYTES); split the file or raise the limit")


class NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without aliases: '*name' references are what an alias bomb multiplies, and front
    matter has no use for them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"aliases ('*{event.anchor}') are not allowed in front matter; "
                "write the value out", event.start_mark)
        return super().compose_node(parent, index)


def load_front_matter(text: str):
    if len(text) > MAX_FRONT_MATTER_CHARS:
        raise LimitError(f"front matter too long: {len(text):,} characters, over the limit of "
                         f"{MAX_FRONT_MATTER_CHARS:,}; expected a few 'key: value' lines")
    return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')  # alternatives never overlap: linear
BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (an unbalanced text gives some depth too)."""
    depth = deepest = 0
    for match in BRACKETS.finditer(STRINGS.sub('""', text)):
        if match.group(0) in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise LimitError(f"a number with {digits} digits, over the limit of {MAX_INT_DIGITS}")
    return int(text)


def load_json(text: str):
    """json.loads with nesting and integer size bounded (LimitError), else JSONDecodeError as usual."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise LimitError(f"JSON nested {depth} levels deep, over the limit of {MAX_JSON_DEPTH}; "
                         "expected a list of flat record objects")
    return json.loads(text, parse_int=_bounded_int)
