"""The WfCommons Montage trace (619 activities, sleeps scaled down) through chained dispatch on
the real Slurm cluster: the dispatcher is only ever a batch job, same-shaped activities go out
as arrays, and every activity ends FINISHED."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import WFCOMMONS, ak, shared_file
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401

pytestmark = pytest.mark.infra
TRACE = WFCOMMONS / "montage-chameleon-2mass-025d-001.json"


def _stray(home: Path) -> list[str]:
    """This run's akoflow processes that are not inside a Slurm job."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if "-m akoflow" not in cmd or p.environ().get("AKOFLOW_HOME") != str(home):
                continue
            if not any("slurmstepd" in a.name() for a in p.parents()):
                found.append(cmd)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_montage_through_chained_dispatch(slurm_cluster: object, akhome: Path,
                                          tmp_path: Path) -> None:
    wf = tmp_path / "montage.yaml"
    ak("import", "wfformat", str(shared_file(TRACE)), "-o", str(wf), "--scale", "0.0001",
       home=akhome, check=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "sbatch.log"
    wrapper = bindir / "sbatch"
    wrapper.write_text(f"#!/bin/bash\necho \"$*\" >> {log}\nexec /usr/bin/sbatch \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    # No lookahead: children are submitted when ready, so each level goes out in arrays
    # (with lookahead every child is queued alone, with afterok on its own parents).
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "arrays.yaml").write_text("name: arrays\nextends: slurm\nlookahead: 0\n")
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "AKOFLOW_SAMPLE_INTERVAL": "5", "AKOFLOW_SITES": str(sites)}
    ak("submit", str(wf), "--site", "arrays", home=akhome, env=env, check=True)
    strays: list[str] = []
    deadline = time.time() + 900
    while time.time() < deadline:
        strays += _stray(akhome)
        st = json.loads(ak("status", "1", "--json", home=akhome, env=env, check=True).stdout)
        if st["status"] in ("FINISHED", "FAILED", "CANCELLED"):
            break
        time.sleep(2)
    assert st["status"] == "FINISHED", st
    assert st["counts"] == {"FINISHED": 619}
    assert strays == []  # no akoflow process outside a Slurm job, ever
    calls = log.read_text().splitlines()
    tasks = [c for c in calls if "dispatcher" not in c.rsplit(" ", 1)[-1]]
    arrays = [c for c in tasks if "--array=" in c]
    assert arrays, calls
    assert len(tasks) < 619 / 4, f"{len(tasks)} sbatch calls for 619 activities"
    print(f"montage: {len(tasks)} task sbatch calls ({len(arrays)} arrays), "
          f"{len(calls) - len(tasks)} dispatcher jobs")
