"""Failures a laptop user meets: one clear line each, a non-zero exit, nothing half-registered
on the cluster; a broken upload resumes; a submit repeated after a drop registers once."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.remote.laptop import (
    REMOTE_HOME,
    TRANSPORTS,
    Laptop,
    cluster_workflows,
    remote_home,
)

pytestmark = pytest.mark.infra


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unreachable_and_refused(laptop: Laptop, transport: str, tmp_path: Path) -> None:
    closed = laptop.site("closed", transport, port=1)  # nothing listens on port 1
    assert "cannot reach" in _one_error_line(laptop.ak("status", f"{closed}:1"))
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    denied = laptop.site("denied", transport, identity_file=str(stranger))
    assert "authentication refused" in _one_error_line(laptop.ak("status", f"{denied}:1"))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_akoflow_missing_on_the_cluster(laptop: Laptop, transport: str) -> None:
    site = laptop.site("bare", transport, remote_home="~/.akoflow-never-set-up")
    line = _one_error_line(laptop.ak("list", "--site", site))
    assert "not installed" in line and f"akoflow remote setup {site}" in line


def test_another_version_on_the_cluster(laptop: Laptop) -> None:
    """An older akoflow in the venv there: one line naming both versions and setup."""
    c = laptop.cluster
    old_home = c.home / ".akoflow-old"
    shutil.rmtree(old_home, ignore_errors=True)
    shutil.copytree(remote_home(c) / "venv", old_home / "venv", symlinks=True)
    init = next((old_home / "venv").glob("lib/python*/site-packages/akoflow/__init__.py"))
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "0.0.1+old'))
    subprocess.run(["chown", "-R", f"{c.user}:{c.user}", str(old_home)], check=True)
    site = laptop.site("old", "paramiko", remote_home="~/.akoflow-old")
    line = _one_error_line(laptop.ak("status", f"{site}:1"))
    assert "0.0.1+old" in line and "this machine 0.1.0" in line
    assert f"akoflow remote setup {site}" in line
    shutil.rmtree(old_home)


def test_remote_disk_full(laptop: Laptop) -> None:
    c = laptop.cluster
    tiny = c.home / ".akoflow-tiny"
    tiny.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(tiny)], check=True)
    try:
        subprocess.run(["chown", f"{c.user}:{c.user}", str(tiny)], check=True)
        site = laptop.site("tiny", "paramiko", remote_home="~/.akoflow-tiny")
        line = _one_error_line(laptop.ak("remote", "setup", site))
        assert "remote disk full" in line
    finally:
        subprocess.run(["umount", str(tiny)], check=False)
        tiny.rmdir()


def _partial(c_home: Path) -> list[Path]:
    return list((c_home / REMOTE_HOME / "store" / "partial").glob("*"))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_upload_resumes_after_sshd_stopped(laptop: Laptop, transport: str,
                                           tmp_path: Path) -> None:
    c = laptop.cluster
    site = laptop.site("clu", transport)
    data = tmp_path / "data"
    data.mkdir()
    big = data / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(96):
            fh.write(os.urandom(1 << 20))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    spec = tmp_path / "wf.yaml"
    spec.write_text("name: bigin\nspec:\n  inputs: [data]\n  activities:\n    - name: a\n"
                    "      run: sha256sum data/big.bin > sum.txt\n")
    stopped = threading.Event()
    stale = set(_partial(c.home))

    def stop_midway() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            parts = [p for p in _partial(c.home) if p not in stale]
            if parts and parts[0].stat().st_size > (8 << 20):
                c.target.stop()
                stopped.set()
                return
            time.sleep(0.005)

    before = len(cluster_workflows(c))
    watcher = threading.Thread(target=stop_midway)
    watcher.start()
    try:
        first = laptop.ak("submit", str(spec), "--site", site)
    finally:
        watcher.join()
        c.target.start()
    assert stopped.is_set(), "the upload ended before sshd could be stopped"
    line = _one_error_line(first)
    assert "lost" in line and "run the same command again" in line
    assert len(cluster_workflows(c)) == before  # nothing registered
    partial = next(p for p in _partial(c.home) if p not in stale).stat().st_size
    assert 0 < partial < big.stat().st_size
    second = laptop.json("submit", str(spec), "--site", site)
    assert second["uploaded_bytes"] <= big.stat().st_size - partial + (1 << 20)
    final = laptop.wait_status(second["ref"])
    assert final["status"] == "FINISHED"
    assert (Path(final["work_dir"]) / "sum.txt").read_text().split()[0] == digest
    # unchanged inputs: a second submission sends no file content
    third = laptop.json("submit", str(spec), "--site", site)
    assert third["uploaded_bytes"] == 0 and third["id"] != second["id"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_repeated_submit_after_a_drop_registers_once(laptop: Laptop, transport: str,
                                                     tmp_path: Path) -> None:
    site = laptop.site("clu", transport)
    spec = tmp_path / "wf.yaml"
    name = f"once{transport}"
    spec.write_text(f"name: {name}\nspec:\n  activities:\n    - name: a\n"
                    "      run: echo hi\n")
    dropped = laptop.ak("submit", str(spec), "--site", site,
                        env={"AKOFLOW_REMOTE_FAULT": "drop-after-submit"})
    assert "not registered twice" in _one_error_line(dropped)
    again = laptop.json("submit", str(spec), "--site", site)
    ids = [i for i, n in cluster_workflows(laptop.cluster) if n == name]
    assert ids == [again["id"]]
    assert laptop.wait_status(again["ref"])["status"] == "FINISHED"
    # once it succeeded, the same submission again is a new run, as locally
    third = laptop.json("submit", str(spec), "--site", site)
    assert third["id"] != again["id"] and third["registered"]


def test_run_on_an_ssh_site_is_refused(laptop: Laptop) -> None:
    site = laptop.site("clu", "paramiko")
    line = _one_error_line(laptop.ak("run", str(EXAMPLES / "diamond.yaml"), "--site", site))
    assert "akoflow submit" in line


def test_pull_resumes_after_sshd_stopped(laptop: Laptop, tmp_path: Path) -> None:
    c = laptop.cluster
    site = laptop.site("clu", "openssh")
    spec = tmp_path / "wf.yaml"
    spec.write_text("name: bigout\nspec:\n  activities:\n    - name: a\n"
                    "      run: head -c 100000000 /dev/urandom > big.out\n")
    ref = laptop.ak("submit", str(spec), "--site", site, check=True).stdout.strip()
    final = laptop.wait_status(ref)
    assert final["status"] == "FINISHED"
    remote_file = Path(final["work_dir"]) / "big.out"
    out = tmp_path / "pulled"
    part = out / "work" / "big.out.akoflow-part"
    stopped = threading.Event()

    def stop_midway() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if part.exists() and part.stat().st_size > (8 << 20):
                c.target.stop()
                stopped.set()
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=stop_midway)
    watcher.start()
    try:
        first = laptop.ak("pull", ref, "-o", str(out))
    finally:
        watcher.join()
        c.target.start()
    assert stopped.is_set(), "the pull ended before sshd could be stopped"
    assert "lost" in _one_error_line(first)
    got = part.stat().st_size
    second = laptop.json("pull", ref, "-o", str(out))
    assert second["bytes_received"] <= remote_file.stat().st_size - got + (1 << 20)
    assert (out / "work" / "big.out").read_bytes() == remote_file.read_bytes()
    assert laptop.json("pull", ref, "-o", str(out))["files_fetched"] == 0
