"""Nothing silent (#19): no false success, no duplicate execution, no failure that only a log
file knows about. Each test reproduces a case found by an adversarial pass, with real
processes."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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


def _sleeper(path: Path, seconds: int = 30) -> Path:
    path.write_text("name: sleeper\nspec:\n  activities:\n"
                    f"    - name: s\n      run: sleep {seconds}\n"
                    "    - name: t\n      run: 'true'\n      dependsOn: [s]\n")
    return path


def test_a_dispatcher_that_dies_at_once_fails_the_submit(akhome: Path, tmp_path: Path) -> None:
    """Its lock directory cannot be made: `submit` must not print an id and exit 0."""
    akhome.mkdir(parents=True)
    (akhome / "locks").write_text("not a directory\n")
    proc = ak("submit", str(_sleeper(tmp_path / "wf.yaml")), home=akhome, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "dispatcher died" in lines[0] and "locks" in lines[0], lines
    assert "akoflow retry 1" in lines[0]
    st = ak("status", "1", "--json", home=akhome, check=True)
    problem = json.loads(st.stdout)["dispatcher_problem"]
    assert problem and "no dispatcher is alive" in problem and "locks" in problem
    listed = ak("list", home=akhome, check=True)
    assert "no dispatcher" in listed.stdout and "no dispatcher is alive" in listed.stderr
    logs = ak("logs", "1", home=akhome)
    assert "no dispatcher is alive" in logs.stderr


def test_a_dispatcher_killed_mid_run_is_reported(akhome: Path, tmp_path: Path) -> None:
    ak("submit", str(_sleeper(tmp_path / "wf.yaml")), home=akhome, check=True)
    assert json.loads(ak("status", "1", "--json", home=akhome).stdout)[
        "dispatcher_problem"] is None
    for p in procs_with("--resume"):  # the detached `run --resume 1` of this home
        try:
            if p.environ().get("AKOFLOW_HOME") == str(akhome):
                p.kill()
                p.wait(10)
        except psutil.Error:
            continue
    st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert st["status"] == "RUNNING"
    assert "no dispatcher is alive for workflow 1" in st["dispatcher_problem"]
    follow = ak("logs", "1", "--follow", home=akhome, timeout=60)
    assert follow.returncode == 1 and "no dispatcher is alive" in follow.stderr
    ak("cancel", "1", home=akhome, check=True)


@pytest.fixture
def read_only(akhome: Path) -> Iterator[Callable[[], None]]:
    """Make the home read-only (a bind mount: root ignores file modes), undone after."""
    mounted: list[Path] = []

    def freeze() -> None:
        for argv in (["mount", "--bind", str(akhome), str(akhome)],
                     ["mount", "-o", "remount,ro,bind", str(akhome)]):
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode != 0:
                if mounted:
                    subprocess.run(["umount", str(akhome)], check=False)
                if in_ci():
                    raise AssertionError(f"{argv}: {proc.stderr}")
                pytest.skip(f"cannot make a read-only mount here: {proc.stderr.strip()}")
            if not mounted:
                mounted.append(akhome)

    yield freeze
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


def test_a_read_only_home_still_allows_reading(akhome: Path, tmp_path: Path,
                                               read_only: Callable[[], None]) -> None:
    proc = ak("run", str(_result_workflow(tmp_path / "wf.yaml", "x")), home=akhome)
    assert proc.returncode == 0, proc.stderr
    read_only()
    for argv in (["list"], ["status", "1"], ["describe", "1"], ["logs", "1"], ["files", "1"],
                 ["metrics", "1"], ["prov", "1", "--format", "prov-json"]):
        out = ak(*argv, home=akhome)
        assert out.returncode == 0, (argv, out.stderr)
    wrote = ak("run", str(tmp_path / "wf.yaml"), home=akhome)
    assert wrote.returncode == 1 and "internal error" not in wrote.stderr
    lines = wrote.stderr.strip().splitlines()
    assert len(lines) == 1 and str(akhome) in lines[0] and "AKOFLOW_HOME" in lines[0], lines


@pytest.mark.parametrize("damage", ["garbage", "directory"])
def test_a_broken_manifest_is_named_not_an_internal_error(akhome: Path, tmp_path: Path,
                                                           damage: str) -> None:
    akhome.mkdir(parents=True)
    db = akhome / "manifest.db"
    if damage == "garbage":
        db.write_bytes(b"this is not sqlite " * 400)
    else:
        db.mkdir()
    for argv in (["list"], ["run", str(_result_workflow(tmp_path / "wf.yaml", "x"))]):
        out = ak(*argv, home=akhome)
        assert out.returncode not in (0, 70), out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert str(db) in lines[0] and "internal error" not in lines[0]


def test_a_path_too_long_is_named(akhome: Path, tmp_path: Path) -> None:
    deep = akhome / ("d" * 250) / ("e" * 250)
    out = ak("list", home=deep)
    assert out.returncode == 1 and "path too long" in out.stderr, out.stderr


def test_a_full_disk_is_named(akhome: Path, tmp_path: Path) -> None:
    akhome.mkdir(parents=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(akhome)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        if in_ci():
            raise AssertionError(proc.stderr)
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    try:
        with open(akhome / "filler", "wb") as fh:  # take all the room there is
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        out = ak("run", str(_result_workflow(tmp_path / "wf.yaml", "x")), home=akhome)
        assert out.returncode not in (0, 70), out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert str(akhome) in lines[0] and ("space" in lines[0] or "full" in lines[0]), lines
    finally:
        subprocess.run(["umount", str(akhome)], check=False)


@pytest.mark.parametrize("command", ["run", "submit"])
def test_file_names_that_are_not_utf8(akhome: Path, tmp_path: Path, command: str) -> None:
    """Bytes are bytes: such names are recorded losslessly and printed safely, and neither
    the dispatcher nor a reader crashes on them."""
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: bytes\nspec:\n  activities:\n    - name: make\n      run: |\n"
                  "        echo x > \"$(printf 'bad\\377.txt')\"\n"
                  "        echo y > \"$(printf 'new\\nline.txt')\"\n"
                  "    - name: read\n      dependsOn: [make]\n      run: |\n"
                  "        cat \"$(printf 'bad\\377.txt')\" > copy.txt\n")
    if command == "run":
        assert ak("run", str(wf), home=akhome).returncode == 0
    else:
        ak("submit", str(wf), home=akhome, check=True)
        deadline = time.time() + 60
        while json.loads(ak("status", "1", "--json", home=akhome).stdout)["status"] in (
                "PENDING", "RUNNING") and time.time() < deadline:
            time.sleep(0.2)
    assert json.loads(ak("status", "1", "--json", home=akhome).stdout)["status"] == "FINISHED"
    rows = json.loads(ak("files", "1", "--json", home=akhome, check=True).stdout)
    bad = [r for r in rows if r["path"].startswith("bad")]
    assert bad and all(r["path"] == "bad\\xff.txt" for r in bad)
    assert {base64.b64decode(r["raw_b64"]) for r in bad} == {b"bad\xff.txt"}
    table = ak("files", "1", home=akhome, check=True).stdout
    assert "bad\\xff.txt" in table and "new\\nline.txt" in table
    for fmt in ("prov-json", "prov-n"):
        assert ak("prov", "1", "--format", fmt, home=akhome).returncode == 0
    for argv in (["lineage", "1", "--format", "json"], ["report", "1", "-o",
                 str(tmp_path / "r.html")], ["crate", "1", "-o", str(tmp_path / "c.zip")]):
        out = ak(*argv, home=akhome)
        assert out.returncode == 0, (argv, out.stderr)


@pytest.mark.infra
def test_a_batch_dispatcher_that_cannot_start_fails_the_submit(
        slurm_cluster: object, akhome: Path, tmp_path: Path) -> None:
    """A dispatcher job whose python cannot run (a broken install on the compute nodes):
    `submit` says so instead of printing an id for a workflow that stays RUNNING forever."""
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "broken.yaml").write_text(
        "name: broken\nextends: slurm\npython: /nonexistent/bin/python3\n")
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: b\nspec:\n  runtime: broken\n  activities:\n"
                  "    - {name: a, run: 'true'}\n")
    proc = ak("submit", str(wf), home=akhome, env={"AKOFLOW_SITES": str(sites)}, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "dispatcher died" in proc.stderr and "/nonexistent/bin/python3" in proc.stderr
    st = json.loads(ak("status", "1", "--json", home=akhome,
                       env={"AKOFLOW_SITES": str(sites)}).stdout)
    assert "no dispatcher is alive" in (st["dispatcher_problem"] or "")


# -- crash and concurrency experiments that passed, kept so they keep passing ---------------

def _big_spec(path: Path, n: int = 3000) -> Path:
    acts = "".join(f"    - {{name: t{i}, run: 'true'"
                   f"{f', dependsOn: [t{i - 1}]' if i % 10 else ''}}}\n" for i in range(n))
    path.write_text(f"name: big\nspec:\n  activities:\n{acts}")
    return path


def test_kill_9_during_registration_leaves_all_or_nothing(akhome: Path, tmp_path: Path) -> None:
    spec = _big_spec(tmp_path / "big.yaml")
    env = {**os.environ, "AKOFLOW_HOME": str(akhome)}
    rng = random.Random(11)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-m", "akoflow", "submit", str(spec)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.15, 0.6))
        proc.kill()
        proc.wait()
    listed = json.loads(ak("list", "--json", "--limit", "50", home=akhome, check=True).stdout)
    for wf in listed:  # each registration happened whole, or not at all
        assert wf["activities"] == 3000, wf
    ids = [wf["id"] for wf in listed]
    assert len(ids) == len(set(ids))
    for wf in listed:
        ak("cancel", str(wf["id"]), home=akhome)


def test_kill_9_of_a_task_fails_that_attempt_and_the_retry_runs(akhome: Path,
                                                                   tmp_path: Path) -> None:
    wf = tmp_path / "victim.yaml"
    wf.write_text("name: victim\nspec:\n  activities:\n    - name: v\n      retries: 1\n"
                  "      run: |\n        if [ -e tried ]; then exit 0; fi\n"
                  "        touch tried; sleep 60\n")
    proc = subprocess.Popen([sys.executable, "-m", "akoflow", "run", str(wf), "--quiet"],
                            env={**os.environ, "AKOFLOW_HOME": str(akhome)})
    try:
        deadline = time.time() + 60
        pid = None
        while pid is None and time.time() < deadline:
            found = list(akhome.glob("runs/*/activities/v.1/pid"))
            text = found[0].read_text() if found else ""
            pid = int(text.split()[0]) if text.strip() else None
            time.sleep(0.1)
        assert pid is not None
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert st["status"] == "FINISHED"
    assert [(f["attempt"], f["exit_code"]) for f in st["recovered"]] == [(1, 137)]


def test_twenty_concurrent_submits_with_readers(akhome: Path, tmp_path: Path) -> None:
    env = {**os.environ, "AKOFLOW_HOME": str(akhome), "AKOFLOW_SAMPLE_INTERVAL": "0.2"}
    specs = []
    for k in range(20):
        p = tmp_path / f"wf{k}.yaml"
        p.write_text(f"name: c{k}\nspec:\n  activities:\n"
                     f"    - {{name: a, run: 'echo {k} >> \"$AKOFLOW_RUN_DIR/log\"'}}\n"
                     f"    - {{name: b, run: 'echo {k} >> \"$AKOFLOW_RUN_DIR/log\"', "
                     "dependsOn: [a]}\n")
        specs.append(p)
    stop = time.time() + 30
    readers = [subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time\n"
         f"while time.time() < {stop}:\n"
         f"    subprocess.run([sys.executable, '-m', 'akoflow', 'list'],"
         " capture_output=True)\n"], env=env) for _ in range(2)]
    submits = [subprocess.Popen([sys.executable, "-m", "akoflow", "submit", str(p)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for p in specs]
    outs = [s.communicate(timeout=120) for s in submits]
    assert all(s.returncode == 0 for s in submits), [o[1] for o in outs]
    ids = sorted(int(o[0].strip()) for o in outs)
    assert ids == list(range(1, 21))
    deadline = time.time() + 120
    while time.time() < deadline:
        rows = json.loads(ak("list", "--json", "--limit", "50", home=akhome).stdout)
        if all(r["status"] == "FINISHED" for r in rows) and len(rows) == 20:
            break
        time.sleep(0.5)
    for r in readers:
        r.kill()
    assert all(r["status"] == "FINISHED" for r in rows), rows
    for r in rows:  # each task ran exactly once
        run_dir = Path(json.loads(ak("status", str(r["id"]), "--json",
                                     home=akhome).stdout)["run_dir"])
        assert len((run_dir / "log").read_text().split()) == 2
