"""Shared helpers for the spec tests (a uniquely named module: `conftest` names collide)."""

from __future__ import annotations

from pathlib import Path

import pytest

from akoflow.spec import SpecError, parse_workflow_text

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
WFCOMMONS = REPO.parent / "shared" / "data" / "wfcommons"  # ../shared, as CI lays it out


def issues_of(text: str, *, strict: bool = False, source: str = "wf.yaml") -> list[str]:
    """The SpecError lines a text produces (fails the test if it loads)."""
    with pytest.raises(SpecError) as info:
        parse_workflow_text(text, source=source, strict=strict)
    return [str(i) for i in info.value.issues]
