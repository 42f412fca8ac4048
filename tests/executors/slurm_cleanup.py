"""Leave the shared test cluster empty: a failed test must not hold nodes for the next one."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def cancel_akoflow_jobs() -> Iterator[None]:
    yield
    out = subprocess.run(["squeue", "--noheader", "--format=%i %j"], capture_output=True,
                         text=True, check=False).stdout
    ids = [line.split()[0] for line in out.splitlines() if " akoflow." in line]
    if ids:
        subprocess.run(["scancel", *ids], check=False)
