"""What the packing tests share: a packed site profile, waiting for a workflow, this test's
jobs in the scheduler's queue, and the run log of every task (to show none ran twice)."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import ak


def site(tmp_path: Path, name: str, text: str) -> dict[str, str]:
    """A site profile of this test; the environment that makes akoflow find it."""
    sites = tmp_path / "sites"
    sites.mkdir(exist_ok=True)
    (sites / f"{name}.yaml").write_text(f"name: {name}\n{text}")
    return {"AKOFLOW_SITES": str(sites)}


def wait_final(home: Path, env: dict[str, str], wf: int = 1, timeout: float = 300,
               watch: Any = None) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        st: dict[str, Any] = json.loads(ak("status", str(wf), "--json", home=home, env=env,
                                           check=True).stdout)
        if st["status"] in ("FINISHED", "FAILED", "CANCELLED") or time.time() > deadline:
            return st
        if watch is not None:
            watch()
        time.sleep(0.5)


def slurm_jobs(home: Path) -> list[dict[str, str]]:
    """This test's Slurm jobs (their scripts live under its AKOFLOW_HOME)."""
    out = subprocess.run(["squeue", "--noheader", "--array", "--states=PENDING,RUNNING",
                          "--format=%i|%j|%T|%o"], capture_output=True, text=True,
                         check=False).stdout
    rows = []
    for line in out.splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) == 4 and parts[3].startswith(str(home)):
            rows.append({"id": parts[0], "name": parts[1], "state": parts[2]})
    return rows


def logged_task(name: str, seconds: float, extra: str = "") -> str:
    """An activity that notes its start and end (attempt number) in runs/<name>."""
    run = (f"mkdir -p runs; echo \"start $AKOFLOW_ATTEMPT\" >> runs/{name}; sleep {seconds:g};"
           f" echo \"end $AKOFLOW_ATTEMPT\" >> runs/{name}")
    return f"    - name: {name}\n      run: '{run}'\n{extra}"


def runs_of(work: Path) -> dict[str, list[str]]:
    return {p.name: p.read_text().splitlines() for p in sorted((work / "runs").glob("*"))}


def assert_once(home: Path, env: dict[str, str], work: Path) -> dict[str, Any]:
    """Every activity FINISHED, its last attempt the one that ended; no attempt started
    twice, no task ended twice; an attempt that started and did not end lost its allocation
    (run again without using a retry)."""
    desc = json.loads(ak("describe", "1", "--json", home=home, env=env, check=True).stdout)
    runs = runs_of(work)
    for a in desc["activities"]:
        assert a["status"] == "FINISHED", a
        lines = runs.get(a["name"], [])
        ends = [ln for ln in lines if ln.startswith("end")]
        starts = Counter(ln for ln in lines if ln.startswith("start"))
        assert ends == [f"end {a['attempts']}"], (a["name"], lines)
        assert all(n == 1 for n in starts.values()), (a["name"], lines)
    return {a["name"]: a for a in desc["activities"]}
