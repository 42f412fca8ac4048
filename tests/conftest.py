"""Shared fixtures: an isolated AKOFLOW_HOME per test and a helper to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytest_plugins = ["tests.infra.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    """Every local run traces its tasks (exact lineage) when strace is there: make sure it
    is, before any test asks (as root, from Debian; CI runs as root)."""
    from tests.infra.strace import ensure_strace

    if ensure_strace() is None and os.environ.get("CI", "").lower() == "true":
        raise pytest.UsageError("strace is missing and cannot be installed (not root)")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WFCOMMONS = ROOT.parent / "shared" / "data" / "wfcommons"


def shared_file(path: Path) -> Path:
    """A file of ../shared (WfCommons traces, seeds), which CI lays out beside the
    repository: where it is missing a test skips with the reason, except in CI
    (`CI=true`), where that is a failure."""
    if not path.exists():
        why = f"{path} is not here: ../shared must sit beside the repository"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture
def akhome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private manifest home; fast sampling so short tasks still get psutil samples."""
    home = tmp_path / "akhome"
    monkeypatch.setenv("AKOFLOW_HOME", str(home))
    monkeypatch.setenv("AKOFLOW_SAMPLE_INTERVAL", "0.2")
    yield home


def ak(*args: str, home: Path, timeout: float = 300, check: bool = False,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `akoflow ARGS` as a user would, in a subprocess."""
    full_env = {**os.environ, "AKOFLOW_HOME": str(home), **(env or {})}
    full_env.setdefault("AKOFLOW_SAMPLE_INTERVAL", "0.2")
    proc = subprocess.run(
        [sys.executable, "-m", "akoflow", *args], capture_output=True, text=True,
        timeout=timeout, env=full_env, stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"akoflow {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def procs_with(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains `marker`."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []) and p.status() != "zombie":
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def work_dir(home: Path, wf_id: int | str = 1) -> Path:
    """A workflow's shared working directory, as `akoflow status` reports it (run
    directories are named for the manifest instance, so tests never build the path)."""
    import json

    out = ak("status", str(wf_id), "--json", home=home, check=True).stdout
    return Path(json.loads(out)["work_dir"])
