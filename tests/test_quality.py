"""Project hygiene is part of the test suite: ruff and mypy --strict must stay clean."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_static_checks(tool: str) -> None:
    if tool == "ruff":
        argv = [shutil.which("ruff") or "ruff", "check", "."]
    else:
        argv = [sys.executable, "-m", "mypy", "--strict", "akoflow", "executors"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
