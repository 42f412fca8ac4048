"""Spec problems a user can fix: each one names the file, the line and the field path."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest known word, or "" when none is close."""
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a workflow definition, printable as a single `file:line: path: msg` line."""

    file: str | None
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        if self.file is not None and self.line is not None:
            where = f"{self.file}:{self.line}"
        elif self.file is not None:
            where = self.file
        elif self.line is not None:
            where = f"line {self.line}"
        else:
            where = ""
        return ": ".join(part for part in (where, self.path, self.message) if part)


class SpecError(Exception):
    """A workflow definition is invalid; carries every issue found, not just the first."""

    def __init__(self, issues: Iterable[SpecIssue]) -> None:
        self.issues: list[SpecIssue] = list(issues)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues)
