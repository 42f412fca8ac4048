"""Nothing silent (#19): no false success, no duplicate execution, no failure that only a log
file knows about. Each test reproduces a case found by an adversarial pass, with real
processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from akoflow.worker import leftovers
from tests.conftest import ak, procs_with
from tests.infra import in_ci


def _result_workflow(path: Path, text: str) -> Path:
    path.write_text("name: job\nspec:\n  activities:\n"
                    f"    - name: compute\n      run: echo {text} > result.txt\n")
    return path


@pytest.mark.parametrize("loss", ["deleted", "truncated"])
def test_a_lost_manifest_never_adopts_an_old_run(akhome: Path, tmp_path: Path,
                                                 loss: str) -> None:
    """Manifest gone, runs/ kept, a changed workflow of the same name: it gets id 1 again,
    and must run, not report the old attempt's exit code as its own."""
    proc = ak("run", str(_result_workflow(tmp_path / "wf.yaml", "old")), home=akhome)
    assert proc.returncode == 0, proc.stderr
    first = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    db = akhome / "manifest.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    if loss == "deleted":
        db.unlink()
    else:
        os.truncate(db, 0)
    proc = ak("run", str(_result_workflow(tmp_path / "wf.yaml", "new")), home=akhome)
    assert proc.returncode == 0, proc.stderr
    second = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert second["run_dir"] != first["run_dir"]
    assert (Path(second["work_dir"]) / "result.txt").read_text() == "new\n"
    assert (Path(first["work_dir"]) / "result.txt").read_text() == "old\n"  # left alone


def _marked(marker: str) -> list[psutil.Process]:
    return [p for p in procs_with(marker) if "pytest" not in " ".join(p.cmdline())]


@pytest.mark.parametrize("mode", ["inline", "process"])
def test_an_attempt_ends_with_its_processes(akhome: Path, tmp_path: Path, mode: str) -> None:
    """Background processes of a failed attempt are stopped before its retry runs (they
    wrote the output beside it); those of a finished task do not outlive it either."""
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "here.yaml").write_text(f"name: here\nexecutor: local\nmode: {mode}\n")
    marker = f"akoflow-leftover-{mode}-{os.getpid()}"
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "name: leftovers\nspec:\n  runtime: here\n  activities:\n"
        "    - name: flaky\n      retries: 1\n      run: |\n"
        "        if [ ! -e first-try ]; then\n"
        "          touch first-try\n"
        f"          bash -c 'while :; do echo writer >> out.txt; sleep 0.05; done' {marker} &\n"
        "          sleep 0.5; exit 1\n"
        "        fi\n"
        "        before=$(wc -l < out.txt); sleep 1; after=$(wc -l < out.txt)\n"
        "        echo \"$before $after\" > counts.txt\n"
        "    - name: daemonish\n      run: |\n"
        f"        sleep 1000 {marker} 2>/dev/null &\n"
        f"        setsid bash -c 'exec -a sleep-{marker} sleep 1000' </dev/null >/dev/null 2>&1 &\n"
        "        echo started\n")
    proc = ak("run", str(wf), home=akhome, env={"AKOFLOW_SITES": str(sites)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    work = Path(json.loads(ak("status", "1", "--json", home=akhome).stdout)["work_dir"])
    before, after = (work / "counts.txt").read_text().split()
    assert before == after, "the failed attempt's writer ran on beside its retry"
    left = _marked(marker)
    for p in left:  # nothing of this test may outlive it, whatever the outcome
        p.kill()
    escaped = [p for p in left if p.info["cmdline"][0].startswith("sleep-")]
    grouped = [p for p in left if p not in escaped]
    assert not grouped, [p.info["cmdline"] for p in grouped]
    if leftovers.cgroup_root() is None and not in_ci():
        pytest.skip(f"no writable cgroup v2 here: {len(escaped)} daemonized process(es) "
                    "escaped their attempt (README, Limits)")
    assert not escaped, [p.info["cmdline"] for p in escaped]
