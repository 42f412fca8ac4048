"""The agent of a pilot: the local executor's machinery on one node of an allocation.

It reads its pilot's queue (executors/pilot_files.py) and runs each attempt exactly as a
local run would: the local executor's launcher starts it, its one strace follows every task
(exact file lineage), psutil samples it, task.sh claims the attempt (a second start of a
claimed attempt refuses to run) and records its exit code. What happens is appended to the
pilot's events; the agent never opens the manifest.

A task starts only while the allocation can still hold it: its `timeLimit` must end before
the drain time (the allocation's end less a margin); one without a limit may start until
then. At the drain time the agent refuses what is queued, kills what still runs (recorded as
killed by the allocation's end, so the dispatcher runs it again without counting it against
its retries) and ends; so it does on SIGTERM (scancel, preemption, its parent's death). With
nothing to do for `idle_timeout` it ends too. Its launcher kills what it started if the
agent dies without that chance (SIGKILL), so no task outlives its pilot unseen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from akoflow.port import (
    Executor,
    ExecutorError,
    InProcessRunner,
    JobRef,
    Resources,
    TaskLaunch,
    in_process,
    protocol,
)

from . import pilot_files as pf

log = logging.getLogger(__name__)
HEARTBEAT = 5.0  # seconds between two rewrites of state.json
# Exit codes of a task killed by a signal that the end of an allocation sends.
SIGNALLED = frozenset({129, 130, 137, 143})
REAP_ENV = "AKOFLOW_LAUNCHER_REAP"  # the launcher kills its tasks when its input ends


class Agent:
    """Serves one pilot directory until drained, idle, stopped or terminated."""

    def __init__(self, directory: Path, local: Executor, state: pf.PilotState, *,
                 idle_timeout: float, margin: float) -> None:
        runner = in_process(local)
        if runner is None:
            raise ExecutorError(f"{type(local).__name__} cannot run tasks in a pilot's process")
        self.dir = directory
        self.local = local
        self.runner: InProcessRunner = runner  # the same object, as an in-process runner
        self.state = state
        self.idle_timeout = idle_timeout
        self.drain_at = state.deadline - margin
        self.kill_at = state.deadline - margin / 2
        self.queue = pf.Tail(directory / pf.QUEUE)
        self.pending: deque[TaskLaunch] = deque()
        self.running: set[str] = set()
        self.cancelled: set[str] = set()
        self.term = False
        self.busy_at = time.time()
        self._beat_at = 0.0
        self._interval = 0.005

    # -- the loop -----------------------------------------------------------------------------
    def serve(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._terminate)
        self._beat(force=True)
        try:
            while True:
                lines: list[str] = []
                took = self._take(lines)
                self._cancels(lines)
                self._start(lines)
                self._collect(lines)
                pf.append(self.dir / pf.EVENTS, lines)
                if self._over(took):
                    break
                self._beat()
                self._sleep(took or bool(lines))
        finally:
            self._drain()
        return 0

    def _terminate(self, signum: int, _frame: FrameType | None) -> None:
        self.term = True

    def _take(self, lines: list[str]) -> bool:
        """New queue lines become pending launches; refused at once when draining."""
        new = [line for line in self.queue.lines() if not line.startswith(pf.TAKEN_BACK)]
        for adir in new:
            launch = launch_of(Path(adir))
            if launch is None:
                lines.append(pf.event(pf.REFUSED, adir, "no readable task.sh"))
            else:
                self.pending.append(launch)
        if new:
            self.busy_at = time.time()
        return bool(new)

    def _cancels(self, lines: list[str]) -> None:
        marks = set(pf.cancel_marks(self.dir)) - self.cancelled
        if not marks:
            return
        self.cancelled |= marks
        kept = deque(ln for ln in self.pending if ln.attempt_dir.name not in marks)
        for ln in self.pending:
            if ln.attempt_dir.name in marks:
                lines.append(pf.event(pf.CANCELLED, str(ln.attempt_dir), time.time()))
        self.pending = kept
        victims = [a for a in self.running if Path(a).name in marks]
        self._stop(victims, pf.CANCELLED, lines)

    def _start(self, lines: list[str]) -> None:
        """Start pending launches in order while there is room and walltime for them."""
        now = time.time()
        draining = now >= self.drain_at or self.term or (self.dir / pf.STOP).exists()
        while self.pending:
            ln = self.pending[0]
            need = float(ln.resources.time_limit or 0.0)
            if draining or now + need > self.drain_at:
                self.pending.popleft()
                why = "draining" if draining else f"{need:.0f}s do not fit in the walltime left"
                lines.append(pf.event(pf.REFUSED, str(ln.attempt_dir), why))
                continue
            if self.running and not self._room(ln):
                return
            self.pending.popleft()
            try:
                self.local.submit([ln])
            except ExecutorError as exc:  # more than this node has: never starts here
                lines.append(pf.event(pf.REFUSED, str(ln.attempt_dir), str(exc)))
                continue
            self.running.add(str(ln.attempt_dir))
            self.busy_at = now

    def _room(self, ln: TaskLaunch) -> bool:
        node = self.local.nodes()[0]
        cpu = float(ln.resources.cpu or 1.0)
        mem = int(ln.resources.memory or 0)
        return node.cpus_free + 1e-9 >= cpu and node.memory_free >= mem

    def _collect(self, lines: list[str]) -> None:
        for job, st in (self.runner.poll_changes() or {}).items():
            lines.append(pf.event(pf.STARTED, job, st.started_at or time.time(),
                                  self.state.node))
        for job, outcome in self.runner.collect_reports().items():
            self.running.discard(job)
            if self.term and (outcome.exit_code is None or outcome.exit_code in SIGNALLED):
                lines.append(pf.event(pf.KILLED, job, time.time()))
            else:
                lines.append(pf.event(pf.ENDED, job, pf.outcome_text(outcome)))
            self.busy_at = time.time()

    def _over(self, took: bool) -> bool:
        now = time.time()
        if self.term or now >= self.kill_at:
            return True
        if self.running or self.pending or took:
            return False
        stopped = (self.dir / pf.STOP).exists() or now >= self.drain_at
        return stopped or now - self.busy_at >= self.idle_timeout

    def _sleep(self, active: bool) -> None:
        """Wake at once when a task ends; look at the queue every few milliseconds while
        work comes in, less often as the pilot stays idle."""
        self._interval = 0.005 if active else min(0.05, self._interval * 1.25)
        if self.running:
            self.runner.wait(self._interval)
        else:
            time.sleep(self._interval)

    def _beat(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._beat_at >= HEARTBEAT:
            self.state.beat = now
            if now >= self.drain_at or (self.dir / pf.STOP).exists():
                self.state.status = pf.DRAINING
            pf.write_state(self.dir, self.state)
            self._beat_at = now

    # -- the end ------------------------------------------------------------------------------
    def _stop(self, jobs: list[str], kind: str, lines: list[str]) -> None:
        if not jobs:
            return
        self.local.cancel([JobRef(j, "", j, 0.0) for j in jobs])
        for j in jobs:
            self.running.discard(j)
            lines.append(pf.event(kind, j, time.time()))

    def _drain(self) -> None:
        """Refuse what never started, kill what still runs (its allocation is ending), then
        say so in state.json last: after that line nothing of this pilot starts again."""
        lines: list[str] = []
        with contextlib.suppress(Exception):
            self._collect(lines)  # what ended meanwhile is reported as it ended
        for ln in self.pending:
            lines.append(pf.event(pf.REFUSED, str(ln.attempt_dir), "its pilot ended"))
        self.pending.clear()
        with contextlib.suppress(Exception):
            self._stop(sorted(self.running), pf.KILLED, lines)
        pf.append(self.dir / pf.EVENTS, lines)
        self.local.close()
        self.state.status = pf.GONE
        self.state.beat = time.time()
        pf.write_state(self.dir, self.state)


def launch_of(adir: Path) -> TaskLaunch | None:
    """The launch of a prepared attempt, from task.sh's header. Its text stands in for the
    user's script: akoflow's prologue holds nothing that asks for a fresh shell, so the
    launcher forks exactly the tasks it would fork in a local run."""
    info = protocol.read_task(adir)
    try:
        text = (adir / protocol.TASK_SH).read_text()
    except OSError:
        return None
    if not info:
        return None
    return TaskLaunch(
        workflow_id=int(info.get("workflow_id") or 0), workflow=str(info.get("workflow", "")),
        activity_id=0, activity=str(info.get("activity", "")),
        attempt=int(info.get("attempt") or 0), job_name="", attempt_dir=adir,
        work_dir=Path(info.get("work_dir") or adir), run_dir=pf.run_dir_of(adir), script=text,
        resources=Resources.from_json(info.get("resources")),
        sample_interval=float(info.get("sample_interval") or 15.0),
        observe=dict(info.get("observe") or {}))


def node_name() -> str:
    """The scheduler's name for this node (several slurmd may share a host)."""
    return (os.environ.get("SLURMD_NODENAME") or os.environ.get("FLUX_NODE_NAME")
            or socket.gethostname())


def allocation_memory(cpus: float) -> int | None:
    """Bytes of memory the allocation holds on this node, as Slurm exports it (MB)."""
    per_node = os.environ.get("SLURM_MEM_PER_NODE")
    if per_node and per_node.isdigit():
        return int(per_node) * 1024**2
    per_cpu = os.environ.get("SLURM_MEM_PER_CPU")
    if per_cpu and per_cpu.isdigit():
        return int(float(per_cpu) * cpus) * 1024**2
    return None


def die_with_parent(parent: int) -> None:
    """SIGTERM when `parent` dies (Linux PR_SET_PDEATHSIG), so a dispatcher killed however
    it dies takes its node's agent along, and the agent its tasks."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def run_agent(directory: Path, local_class: type[Executor], site: str,
              profile: Mapping[str, Any], state: pf.PilotState, *, idle_timeout: float,
              margin: float) -> int:
    """Make the pilot directory, announce it, and serve it to the end."""
    directory.mkdir(parents=True, exist_ok=False)
    os.environ[REAP_ENV] = "1"
    config = {**profile, "cpus": state.cpus, "memory": state.memory, "mode": "inline",
              "detached": False}
    local = local_class(site, config)
    return Agent(directory, local, state, idle_timeout=idle_timeout, margin=margin).serve()
