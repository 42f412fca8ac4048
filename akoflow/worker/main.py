"""`akoflow worker ATTEMPT_DIR`: what runs inside a batch job around the user's command.

It reads task.sh's header line, runs task.sh in its own process group, samples it with
psutil, forwards the scheduler's SIGTERM/SIGUSR1 to it, observes its file operations (traced,
or snapshots of the work directory before and after), and writes metrics.jsonl as it goes
and result.json last (atomically). It never opens the manifest (nor loads sqlite3).
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import time
from pathlib import Path
from types import FrameType

from akoflow.port import Reason, Resources, protocol
from akoflow.worker import leftovers, tracing
from akoflow.worker.fileops import Roots
from akoflow.worker.monitor import TaskProcess

log = logging.getLogger(__name__)


def run_worker(attempt_dir: Path) -> int:
    """Run one attempt to the end; returns the task's exit code (0 on success)."""
    task_info = protocol.read_task(attempt_dir)
    if not task_info:
        raise SystemExit(f"akoflow worker: {attempt_dir} has no readable task.sh")
    res = Resources.from_json(task_info.get("resources"))
    root = leftovers.cgroup_root()
    if root is not None:  # task.sh joins the attempt's cgroup there
        os.environ[leftovers.ROOT_ENV] = root
    observe = task_info.get("observe") or {}
    task = TaskProcess(
        attempt_dir, Path(task_info["work_dir"]),
        sample_interval=float(task_info.get("sample_interval", 15.0)),
        time_limit=res.time_limit, cgroup_root=root,
        roots=Roots.of(task_info["work_dir"], observe),
        trace=tracing.available(observe.get("trace")),
    )
    Path(task_info["work_dir"]).mkdir(parents=True, exist_ok=True)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if task.reason is None:
            task.reason = (Reason.PREEMPTED.value if signum == signal.SIGUSR1
                           else _term_reason(task))
            task.message = f"received {signal.Signals(signum).name} from the scheduler"
        task.kill(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGUSR1, forward)
    task.spawn()
    written = 0
    metrics_path = attempt_dir / protocol.METRICS
    while True:
        written = _append_metrics(metrics_path, task, written)
        outcome = task.reap()
        if outcome is not None:
            task.stop_leftovers()  # before result.json: a retry may start right after
            task.add_files(outcome)
            break
        deadline = task.tick(time.time())
        timeout = max(0.0, deadline - time.time())
        if task.pidfd >= 0:
            poller = select.poll()
            poller.register(task.pidfd, select.POLLIN)
            poller.poll(timeout * 1000)
        else:
            time.sleep(min(timeout, 0.1))
    _append_metrics(metrics_path, task, written)
    protocol.write_result(attempt_dir, outcome)
    return outcome.exit_code if outcome.exit_code is not None else 1


def _term_reason(task: TaskProcess) -> str:
    """SIGTERM near the time limit is the scheduler's timeout; otherwise a cancel."""
    if task.time_limit and time.time() - task.started_at >= 0.9 * task.time_limit:
        return Reason.TIMEOUT.value
    return Reason.CANCELLED.value


def _append_metrics(path: Path, task: TaskProcess, written: int) -> int:
    new = task.metrics[written:]
    if new:
        with open(path, "a") as fh:
            for m in new:
                fh.write(json.dumps(protocol.wire(m)) + "\n")
    return len(task.metrics)
