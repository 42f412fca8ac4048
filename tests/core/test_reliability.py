"""Crashes, races and cancellation: the dispatcher must repair whatever it finds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ak, procs_with


def _chains_yaml(path: Path, chains: int, length: int, sleep: str = "0.01") -> Path:
    """`chains` independent chains of `length`; each task logs its own execution once."""
    lines = ["name: chains", "spec:", "  activities:"]
    for c in range(chains):
        for i in range(length):
            lines += [
                f"    - name: c{c}-{i}",
                "      run: |",
                "        echo \"$AKOFLOW_ACTIVITY\" >> \"$AKOFLOW_RUN_DIR/executions.log\"",
                f"        sleep {sleep}",
            ]
            if i:
                lines.append(f"      dependsOn: [c{c}-{i - 1}]")
    path.write_text("\n".join(lines) + "\n")
    return path


def _popen(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AKOFLOW_HOME": str(home), "AKOFLOW_SAMPLE_INTERVAL": "0.2"}
    return subprocess.Popen([sys.executable, "-m", "akoflow", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def _start(mode: str, home: Path, wf: Path) -> subprocess.Popen[bytes] | None:
    """`submit` (a detached dispatcher; None) or `run` in the background (its process)."""
    if mode == "submit":
        ak("submit", str(wf), home=home, check=True)
        return None
    return _popen(home, "run", str(wf))


def _wait_registered(home: Path, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if json.loads(ak("list", "--json", home=home, check=True).stdout):
            return
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"`akoflow run` exited {proc.returncode} before registering: "
                                 f"{err[-2000:]}")
        time.sleep(0.1)
    raise AssertionError("workflow was never registered")


def _run_dir(home: Path) -> Path:
    return Path(json.loads(ak("status", "1", "--json", home=home, check=True).stdout)["run_dir"])


def _assert_exactly_once(home: Path, expected: int) -> None:
    st = json.loads(ak("status", "1", "--json", home=home, check=True).stdout)
    assert st["counts"] == {"FINISHED": expected}, st["counts"]
    runs = Counter((_run_dir(home) / "executions.log").read_text().split())
    assert len(runs) == expected
    assert max(runs.values()) == 1, [a for a, n in runs.items() if n > 1]
    events = ak("logs", "1", "--status", "FINISHED", "--json", home=home, check=True)
    finished = Counter(json.loads(line)["activity"] for line in events.stdout.splitlines()
                       if json.loads(line)["activity"])
    assert len(finished) == expected and max(finished.values()) == 1


def test_kill_9_at_random_points_then_resume(akhome: Path, tmp_path: Path) -> None:
    wf = _chains_yaml(tmp_path / "wf.yaml", chains=20, length=10)
    rng = random.Random(int(os.environ.get("AKOFLOW_TEST_SEED", "7")))
    proc = _popen(akhome, "run", str(wf))
    _wait_registered(akhome, proc)
    for _ in range(6):
        time.sleep(rng.uniform(0.05, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = _popen(akhome, "run", "--resume", "1")
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    _assert_exactly_once(akhome, 200)


def test_kill_9_between_one_shot_dispatches(akhome: Path, tmp_path: Path) -> None:
    wf = _chains_yaml(tmp_path / "wf.yaml", chains=10, length=5, sleep="0.05")
    reg = _popen(akhome, "run", str(wf))
    _wait_registered(akhome, reg)
    time.sleep(0.2)
    reg.send_signal(signal.SIGKILL)
    reg.wait()
    rng = random.Random(3)
    deadline = time.time() + 120
    while time.time() < deadline:
        p = _popen(akhome, "dispatch", "1")
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0.0, 0.3))
            p.send_signal(signal.SIGKILL)
        p.wait()
        st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
        if st["status"] == "FINISHED":
            break
        time.sleep(0.05)
    _assert_exactly_once(akhome, 50)


def test_two_dispatchers_at_once(akhome: Path, tmp_path: Path) -> None:
    wf = _chains_yaml(tmp_path / "wf.yaml", chains=20, length=5)
    first = _popen(akhome, "run", str(wf))
    _wait_registered(akhome, first)
    others = [_popen(akhome, "run", "--resume", "1") for _ in range(2)]
    others += [_popen(akhome, "dispatch", "1") for _ in range(3)]
    for p in [first, *others]:
        assert p.wait(timeout=300) in (0, None) or p.returncode == 0
    _assert_exactly_once(akhome, 100)


@pytest.mark.parametrize("mode", ["submit", "run"])
def test_cancel_also_stops_what_was_still_queued(akhome: Path, tmp_path: Path,
                                                 mode: str) -> None:
    """Half the tasks run, half wait in the dispatcher's own queue when another process
    cancels: killing the running ones frees their slots, and the queued ones must not start
    then (the canceller claims them) nor be left running when the dispatcher exits."""
    marker = f"{random.randint(1000, 9999)}.{random.randint(100, 999)}"
    slots = os.cpu_count() or 1
    wf = tmp_path / "wf.yaml"
    acts = "\n".join(f"    - name: s{i}\n      run: sleep {marker}\n      cpuLimit: 1"
                     for i in range(2 * slots))
    wf.write_text(f"name: queued\nspec:\n  activities:\n{acts}\n")
    runner = _start(mode, akhome, wf)
    deadline = time.time() + 30
    while len(procs_with(marker)) < slots and time.time() < deadline:
        time.sleep(0.1)
    assert len(procs_with(marker)) == slots
    ak("cancel", "1", home=akhome, check=True)
    deadline = time.time() + 10
    while procs_with(marker) and time.time() < deadline:
        time.sleep(0.1)
    assert procs_with(marker) == []
    if runner is not None:
        assert runner.wait(timeout=30) == 1
    time.sleep(2)  # a start after the cancel would show up by now
    assert procs_with(marker) == []
    st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert st["status"] == "CANCELLED" and st["counts"] == {"CANCELLED": 2 * slots}
    claims = [p.read_text() for p in (_run_dir(akhome) / "activities").glob("*/pid")]
    assert sum(c.startswith("cancelled\n") for c in claims) == slots, claims  # never ran


@pytest.mark.parametrize("mode", ["submit", "run"])
def test_cancel_kills_process_groups(akhome: Path, tmp_path: Path, mode: str) -> None:
    marker = f"{random.randint(1000, 9999)}.{random.randint(100, 999)}"
    wf = tmp_path / "wf.yaml"
    acts = "\n".join(
        f"    - name: sleeper-{i}\n      run: |\n        sleep {marker} &\n        sleep {marker}\n"
        f"      cpuLimit: 500m" for i in range(4))
    wf.write_text(f"name: sleepy\nspec:\n  activities:\n{acts}\n"
                  "    - name: after\n      run: 'true'\n      dependsOn: [sleeper-0]\n")
    runner = _start(mode, akhome, wf)
    deadline = time.time() + 30
    while len(procs_with(marker)) < 8 and time.time() < deadline:
        time.sleep(0.1)
    assert len(procs_with(marker)) == 8  # 4 tasks x (sleep + background sleep)
    out = ak("cancel", "1", home=akhome, check=True)
    assert "cancelled" in out.stdout
    deadline = time.time() + 10
    while procs_with(marker) and time.time() < deadline:
        time.sleep(0.1)
    assert procs_with(marker) == []  # no orphans, background children included
    if runner is not None:
        assert runner.wait(timeout=30) == 1
    st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert st["status"] == "CANCELLED"
    assert st["counts"] == {"CANCELLED": 5}


def test_retry_restarts_an_unattended_workflow(akhome: Path, tmp_path: Path) -> None:
    """Its dispatcher was killed: `retry` has nothing to reset, but must start one."""
    wf = _chains_yaml(tmp_path / "wf.yaml", chains=2, length=3, sleep="0.5")
    out = json.loads(ak("submit", str(wf), "--json", home=akhome, check=True).stdout)
    os.kill(int(out["dispatcher"].split()[1]), signal.SIGKILL)
    again = json.loads(ak("retry", "1", "--json", home=akhome, check=True).stdout)
    assert again["reset"] == 0 and again["dispatcher"].startswith("pid ")
    deadline = time.time() + 60
    while json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)["status"] \
            in ("PENDING", "RUNNING") and time.time() < deadline:
        time.sleep(0.3)
    _assert_exactly_once(akhome, 6)
    # over now: nothing to reset, nothing to start
    done = json.loads(ak("retry", "1", "--json", home=akhome, check=True).stdout)
    assert done == {"id": 1, "reset": 0, "dispatcher": None}
