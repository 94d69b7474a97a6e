"""Problems found while reading corpus files: one line each, naming file, line and what is wrong."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str
    severity: str = "error"  # "error" skips the entry; "warning" is reported but the entry is kept

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.message}"

    def as_skip(self) -> dict:
        return {"file": self.file, "line": self.line, "reason": self.message}


class ParseError(Exception):
    """An entry that cannot be read; carries the problem so callers can report and go on."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def decode(raw: bytes, file: str) -> str:
    """UTF-8 text, or a ParseError naming the line of the first unreadable byte."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ParseError(Problem(
            file, line, f"unreadable bytes: byte 0x{raw[err.start]:02x} at offset {err.start} is not "
            "UTF-8; expected UTF-8 text (re-save the file as UTF-8)")) from None
    if not text.strip():  # also a file holding only a byte-order mark or white space
        raise ParseError(Problem(file, None, "empty file: expected a study entry"))
    return text
