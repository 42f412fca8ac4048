"""Leave the shared test cluster as we found it: a failed test must not hold nodes for the next
one. Only this test's own jobs are cancelled (their scripts live under its tmp_path), never
other runs' jobs on the same cluster (benchmarks, other sessions)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cancel_akoflow_jobs(tmp_path: Path) -> Iterator[None]:
    yield
    out = subprocess.run(["squeue", "--noheader", "--array", "--format=%i|%j|%o"],
                         capture_output=True, text=True, check=False).stdout
    ids = []
    for line in out.splitlines():
        job_id, _, rest = line.strip().partition("|")
        name, _, command = rest.partition("|")
        if name.startswith("akoflow.") and command.startswith(str(tmp_path)):
            ids.append(job_id)
    if ids:
        subprocess.run(["scancel", *ids], check=False)
