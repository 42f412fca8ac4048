"""A pilot's agent as a real process on this machine, outside any scheduler (`akoflow pilot`
runs anywhere): it takes attempts from its queue file, runs them with the local executor's
machinery (launcher, strace, task.sh's claims) and reports through its events file; it
refuses what its walltime cannot hold, stops what is cancelled, and on SIGTERM kills what
runs and says so before it ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from akoflow.executors import pilot_files as pf
from akoflow.port import Resources, TaskLaunch, protocol
from akoflow.worker import tracing
from tests.infra import in_ci


def _prepare(run_dir: Path, name: str, script: str, **resources: float) -> str:
    launch = TaskLaunch(
        workflow_id=1, workflow="w", activity_id=1, activity=name, attempt=1,
        job_name=f"akoflow.1.{name}.1", attempt_dir=protocol.attempt_dir(run_dir, name, 1),
        work_dir=run_dir / "work", run_dir=run_dir, script=script,
        resources=Resources.from_json({"cpu": 1.0, **resources}), sample_interval=0.2)
    protocol.prepare_attempt(launch)
    return str(launch.attempt_dir)


class Agent:
    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "akoflow", "pilot", "--run-dir", str(run_dir), "--site",
             "packed", "--started", f"{time.time():.3f}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while not self.dirs() and time.time() < deadline:
            time.sleep(0.05)
        [self.dir] = self.dirs()
        self.tail = pf.Tail(self.dir / pf.EVENTS)
        self.seen: list[tuple[str, str, str]] = []

    def dirs(self) -> list[Path]:
        return [p.parent for p in pf.pilots_dir(self.run_dir).glob("*/state.json")]

    def send(self, *adirs: str) -> None:
        pf.append(self.dir / pf.QUEUE, list(adirs))

    def wait_for(self, kind: str, adir: str, timeout: float = 30) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.seen += [pf.parse_event(line) for line in self.tail.lines()]
            for k, a, rest in self.seen:
                if (k, a) == (kind, adir):
                    return rest
            time.sleep(0.05)
        raise AssertionError(f"no {kind} for {adir}; saw {self.seen}")


@pytest.fixture
def agent(akhome: Path, tmp_path: Path) -> Iterator[Agent]:
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "packed.yaml").write_text(
        "name: packed\nextends: slurm\n"
        "packing: {cpus: 2, memory: 1Gi, time: 1m, idle_timeout: 30s}\n")
    env = {**os.environ, "AKOFLOW_HOME": str(akhome), "AKOFLOW_SITES": str(sites)}
    run_dir = tmp_path / "run"
    (run_dir / "work").mkdir(parents=True)
    a = Agent(run_dir, env)
    yield a
    if a.proc.poll() is None:
        a.proc.kill()
        a.proc.wait()


def _dead(adir: str) -> bool:
    pid = protocol.read_int(Path(adir) / protocol.PID)
    return pid is None or not psutil.pid_exists(pid) or \
        psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_an_agent_runs_refuses_cancels_and_ends(agent: Agent) -> None:
    run_dir = agent.run_dir
    state = pf.read_state(agent.dir)
    assert state is not None and state.status == pf.RUNNING and state.cpus == 2
    assert state.deadline - state.started == 60

    one = _prepare(run_dir, "one", "echo one > one.txt")
    two = _prepare(run_dir, "two", "cat one.txt > two.txt")
    agent.send(one)
    first = pf.outcome_of(agent.wait_for(pf.ENDED, one), one)
    agent.send(two)
    second = pf.outcome_of(agent.wait_for(pf.ENDED, two), two)
    assert first is not None and second is not None
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert (run_dir / "work" / "two.txt").read_text() == "one\n"
    roles = {(f.role, f.path, f.observed) for f in second.files}
    if tracing.unavailable() is None or in_ci():  # traced, as the local executor traces
        assert {("used", "one.txt", "trace"), ("generated", "two.txt", "trace")} <= roles
    assert agent.wait_for(pf.STARTED, one).endswith(state.node)

    long = _prepare(run_dir, "long", "sleep 30", time_limit=58.0)  # past its drain time
    agent.send(long)
    assert "do not fit" in agent.wait_for(pf.REFUSED, long)
    assert not (Path(long) / protocol.PID).exists()  # never started

    slow = _prepare(run_dir, "slow", "sleep 30")
    agent.send(slow)
    agent.wait_for(pf.STARTED, slow)
    pf.mark_cancel(agent.dir, slow)
    agent.wait_for(pf.CANCELLED, slow)
    assert _dead(slow)

    last = _prepare(run_dir, "last", "sleep 30")
    agent.send(last)
    agent.wait_for(pf.STARTED, last)
    agent.proc.send_signal(signal.SIGTERM)  # scancel, preemption, the dispatcher's death
    assert agent.proc.wait(20) == 0
    agent.wait_for(pf.KILLED, last)
    assert _dead(last)
    assert json.loads((agent.dir / pf.STATE).read_text())["status"] == pf.GONE
