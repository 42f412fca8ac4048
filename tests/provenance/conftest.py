"""Fixtures: one real diamond run and one failing run, shared by each test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provruns import BROKEN_YAML, DIAMOND_YAML, Run, run_workflow

from akoflow.worker import tracing
from tests.infra import in_ci


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    home = tmp_path_factory.mktemp("provhome")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AKOFLOW_HOME", str(home))
        mp.setenv("AKOFLOW_SAMPLE_INTERVAL", "0.2")
        out = {"diamond": run_workflow(home, DIAMOND_YAML, {"input.csv": "x,1\ny,2\n"}),
               "broken": run_workflow(home, BROKEN_YAML, {})}
        yield out
        for r in out.values():
            r.manifest.close()


@pytest.fixture
def diamond(runs: dict[str, Run]) -> Run:
    """The diamond, whose lineage the tests hold to what its tasks really did: that needs
    syscall tracing (snapshots would credit tasks with files they never read)."""
    why = tracing.unavailable()
    if why is not None and not in_ci():
        pytest.skip(f"exact lineage needs syscall tracing: {why}")
    assert runs["diamond"].status == "FINISHED"
    return runs["diamond"]


@pytest.fixture
def broken(runs: dict[str, Run]) -> Run:
    assert runs["broken"].status == "FAILED"
    return runs["broken"]
