"""The same packing on the other batch adapters: the dispatcher job of a packed site leads
from its allocation and its agent runs the workflow, on the real SGE cell and on the fake
PBS, LSF and Flux schedulers (tests/executors/fakes: no daemon of theirs installs here)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ak
from tests.executors.fakes.pbs.harness import FakeCluster
from tests.executors.packing_support import wait_final
from tests.infra.sge import SgeCluster, sge_env

PACKING = "packing: {cpus: 2, time: 10m, idle_timeout: 10s}\n"


def _check_diamond(home: Path, env: dict[str, str]) -> Path:
    st = wait_final(home, env, timeout=180)
    assert st["status"] == "FINISHED" and st["counts"] == {"FINISHED": 4}, st
    files = json.loads(ak("files", "1", "--json", home=home, env=env, check=True).stdout)
    roles = {(f["activity"], f["role"], f["path"]) for f in files}
    assert {("split", "generated", "numbers.txt"), ("left", "used", "numbers.txt"),
            ("join", "used", "even.txt"), ("join", "generated", "all.txt")} <= roles
    run_dir = Path(st["run_dir"])
    events = "".join(p.read_text() for p in (run_dir / "pilots").glob("*/events"))
    assert events.count("\nE\t") + events.startswith("E\t") == 4  # all four in a pilot
    states = [json.loads(p.read_text()) for p in (run_dir / "pilots").glob("*/state.json")]
    assert states and {s["status"] for s in states} == {"ended"}
    return run_dir


@pytest.mark.parametrize("kind", ["pbs", "lsf", "flux"])
def test_packing_on_the_fake_schedulers(kind: str, akhome: Path, tmp_path: Path) -> None:
    extra = {"flux": {"FAKE_FLUX_DIR": str(tmp_path / "fake-flux")},
             "pbs": {"FAKE_PBS_FLAVOR": "pro"}}.get(kind, {})
    cluster = FakeCluster(kind, tmp_path, extra)
    cluster.site(f"p{kind}", f"name: p{kind}\nextends: {kind}\n{PACKING}")
    try:
        ak("submit", str(EXAMPLES / "diamond.yaml"), "--site", f"p{kind}", home=akhome,
           env=cluster.env, check=True)
        _check_diamond(akhome, cluster.env)
    finally:
        if kind == "flux":
            env = {**os.environ, **cluster.env}
            out = subprocess.run(["flux", "jobs", "--no-header", "--format={id.f58}"],
                                 capture_output=True, text=True, env=env).stdout.split()
            if out:
                subprocess.run(["flux", "cancel", *out], env=env, check=False)
        cluster.shutdown()


@pytest.mark.infra
def test_packing_on_sge(sge_cluster: SgeCluster, akhome: Path, tmp_path: Path) -> None:
    """One slot per pilot here (the cell has no parallel environment for more)."""
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "psge.yaml").write_text("name: psge\nextends: sge\n"
                                     "packing: {cpus: 1, time: 10m, idle_timeout: 10s}\n")
    env = {**sge_env(), "AKOFLOW_SITES": str(sites), "AKOFLOW_CHAIN_SPACING": "1"}
    ak("submit", str(EXAMPLES / "diamond.yaml"), "--site", "psge", home=akhome, env=env,
       check=True)
    _check_diamond(akhome, env)
