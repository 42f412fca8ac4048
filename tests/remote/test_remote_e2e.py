"""End to end from a laptop over real SSH, with both transports: setup, submit (the local
executor on the cluster, and the real Slurm cluster as the unprivileged cluster user), the
laptop process gone, status/logs from fresh processes, pull, then provenance offline."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from akoflow import __version__
from tests.conftest import EXAMPLES
from tests.infra.slurm import SlurmCluster
from tests.remote.laptop import TRANSPORTS, Laptop, remote_home

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_setup_is_idempotent_and_reports(laptop: Laptop, transport: str) -> None:
    site = laptop.site("clu", transport)
    data = laptop.json("remote", "setup", site)
    assert data["action"] == "up to date" and data["bytes_sent"] == 0
    assert data["akoflow"] == __version__
    assert data["writable"] and data["python"].startswith("3.")
    assert data["venv"] == f"{remote_home(laptop.cluster)}/venv"
    assert data["transport"] == transport
    text = laptop.ak("remote", "setup", site, check=True).stdout
    assert "up to date" in text and "scheduler and container commands" in text


def _offline(laptop: Laptop, local_id: str) -> None:
    """Provenance commands answer from the local copy, with the cluster out of reach."""
    broken = {"AKOFLOW_SITES": str(laptop.root / "nowhere")}  # no ssh profile at all
    prov = json.loads(laptop.ak("prov", local_id, env=broken, check=True).stdout)
    assert "activity" in prov
    out = laptop.root / "r.html"
    laptop.ak("report", local_id, "-o", str(out), env=broken, check=True)
    assert out.stat().st_size > 1000
    crate = laptop.root / "c.zip"
    laptop.ak("crate", local_id, "-o", str(crate), env=broken, check=True)
    import zipfile

    with zipfile.ZipFile(crate) as zf:
        assert "ro-crate-metadata.json" in zf.namelist()
        assert any(n.startswith("logs/") for n in zf.namelist())
    lineage = laptop.ak("lineage", local_id, "--format", "json", env=broken, check=True)
    assert "wasGeneratedBy" in lineage.stdout
    assert laptop.json("metrics", local_id, env=broken)
    assert laptop.json("files", local_id, env=broken)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_diamond_on_the_cluster_local_executor(laptop: Laptop, transport: str) -> None:
    site = laptop.site("clu", transport)
    sub = laptop.ak("submit", str(EXAMPLES / "diamond.yaml"), "--site", site, check=True)
    ref = sub.stdout.strip()
    assert ref.startswith(f"{site}:") and ref.split(":")[1].isdigit()
    # the submitting process has exited; everything below is a fresh process
    final = laptop.wait_status(ref)
    assert final["status"] == "FINISHED", final
    assert final["run_dir"].startswith(str(remote_home(laptop.cluster)))
    logs = laptop.ak("logs", ref, "--activity", "join", check=True).stdout
    assert "RUNNING->FINISHED" in logs
    follow = laptop.ak("logs", ref, "--follow", "--json", check=True).stdout.splitlines()
    assert json.loads(follow[-1])["kind"] == "WORKFLOW"
    assert "FINISHED" in laptop.ak("describe", ref, check=True).stdout
    # outputs were written by the cluster user, in its own home
    owner = os.stat(Path(final["work_dir"]) / "all.txt").st_uid
    assert pwd.getpwuid(owner).pw_name == laptop.cluster.user
    pulled = laptop.json("pull", ref)
    assert pulled["origin"] == ref and pulled["files_fetched"] >= 4
    local = laptop.root / "ak" / "pulled" / ref.replace(":", "-") / "work" / "all.txt"
    assert local.read_text().splitlines()[-1] == "1000"
    again = laptop.json("pull", ref)
    assert again["id"] == pulled["id"] and again["files_fetched"] == 0  # updated, not copied
    rows = laptop.json("list")
    assert [r["origin"] for r in rows] == [ref]
    assert f"(from {ref})" in laptop.ak("list", check=True).stdout
    _offline(laptop, str(pulled["id"]))
    # a pulled copy is not controlled here
    refused = laptop.ak("cancel", str(pulled["id"]))
    assert refused.returncode == 1 and ref in refused.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_diamond_on_slurm_as_the_cluster_user(laptop: Laptop, transport: str,
                                              slurm_cluster: SlurmCluster) -> None:
    site = laptop.site("hpc", transport, extends="slurm")
    ref = laptop.ak("submit", str(EXAMPLES / "diamond.yaml"), "--site", site,
                    check=True).stdout.strip()
    final = laptop.wait_status(ref, timeout=300)
    assert final["status"] == "FINISHED", final
    run_dir = Path(final["run_dir"])
    scripts = sorted(run_dir.rglob("*.sh"))
    job_scripts = [p for p in scripts if "#SBATCH" in p.read_text()]
    assert job_scripts, scripts
    venv_python = str(remote_home(laptop.cluster) / "venv" / "bin" / "python")
    assert all(venv_python in p.read_text() for p in job_scripts)
    # the jobs ran as the cluster user (their outputs are its files)
    owner = os.stat(Path(final["work_dir"]) / "all.txt").st_uid
    assert pwd.getpwuid(owner).pw_name == laptop.cluster.user
    pulled = laptop.json("pull", ref)
    assert laptop.json("status", str(pulled["id"]))["status"] == "FINISHED"
    _offline(laptop, str(pulled["id"]))
    # no akoflow process on the laptop, and the chain of dispatcher jobs ends by itself
    prefix = f"akoflow.{ref.split(':')[1]}."
    deadline = time.time() + 90
    while True:
        names = subprocess.run(["squeue", "-h", "-u", laptop.cluster.user, "-o", "%j"],
                               capture_output=True, text=True, check=False).stdout.split()
        if not [n for n in names if n.startswith(prefix)] or time.time() > deadline:
            break
        time.sleep(1)
    assert not [n for n in names if n.startswith(prefix)], names


def test_logs_follow_streams_a_running_workflow(laptop: Laptop, tmp_path: Path) -> None:
    site = laptop.site("clu", "paramiko")
    spec = tmp_path / "slow.yaml"
    spec.write_text("name: slow\nspec:\n  activities:\n    - name: a\n      run: sleep 2\n"
                    "    - name: b\n      run: sleep 1\n      dependsOn: [a]\n")
    ref = laptop.ak("submit", str(spec), "--site", site, check=True).stdout.strip()
    started = time.time()
    lines = laptop.ak("logs", ref, "--follow", "--json", check=True).stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert time.time() - started >= 2  # it waited for the run, over one connection
    assert [e["to_status"] for e in events if e["activity"] == "b"][-1] == "FINISHED"
    assert events[-1]["kind"] == "WORKFLOW" and events[-1]["to_status"] == "FINISHED"
