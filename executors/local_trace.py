"""The local launcher's tracer logs, read as they grow: which attempt did what.

One `strace -f` follows every task a launcher starts (one log per launcher started, in
`$AKOFLOW_HOME/traces`). When a task ends, its record is complete once the log shows its
exit; the few milliseconds between the kernel telling us and the tracer writing it are
waited for here. A task adopted after a dispatcher crash was followed by its old launcher's
tracer, which kept writing: its log is found by the attempt's claim in it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from akoflow.port import AttemptOutcome
from akoflow.worker.monitor import TaskProcess
from akoflow.worker.strace_log import TraceFeed

log = logging.getLogger(__name__)
EXIT_PATIENCE = 2.0  # seconds to wait for a task's exit to reach its tracer's log
STALE_LOG = 24 * 3600.0  # logs of dispatchers that died, kept this long for adopters


class SharedTrace:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.feeds: dict[str, TraceFeed] = {}
        self._sweep()

    def watch(self, paths: list[str]) -> None:
        """Follow these launcher logs (the launcher's own list grows as it restarts)."""
        for p in paths:
            if p not in self.feeds:  # the launcher runs where its dispatcher does
                self.feeds[p] = TraceFeed(p, os.getcwd())

    def ready(self, attempt_dir: str, pid: int) -> list[tuple[str, str]] | None:
        """The task's operations if the log already shows its exit (one read of the logs'
        new lines), else None: the caller asks again after starting other work."""
        for feed in self.feeds.values():
            feed.poll()
            state = feed.state
            if attempt_dir in state.owners and (
                    pid in state.exited or state.owners[attempt_dir] in state.exited):
                return state.take(attempt_dir)
        return None

    def ops_for(self, attempt_dir: str, pid: int) -> list[tuple[str, str]] | None:
        """The operations of the task that claimed `attempt_dir` as process `pid`, once the
        log shows its exit (None if no log of ours ever saw it claim the attempt)."""
        end = time.monotonic() + EXIT_PATIENCE
        while True:
            ops = self.ready(attempt_dir, pid)
            if ops is not None:
                return ops
            if time.monotonic() >= end:
                break
            time.sleep(0.002)
        for feed in self.feeds.values():  # claimed but its exit never logged: what we have
            if attempt_dir in feed.state.owners:
                log.warning("trace of %s ends without its exit; lineage may be partial",
                            attempt_dir)
                return feed.state.take(attempt_dir)
        return self._adopted(attempt_dir)

    def _adopted(self, attempt_dir: str) -> list[tuple[str, str]] | None:
        """Look for the attempt's claim in the logs of launchers that are not ours."""
        needle = os.fsencode(f'{attempt_dir}/pid"')
        for path in sorted(self.dir.glob("launcher-*.strace"), key=_mtime, reverse=True):
            key = str(path)
            if key in self.feeds:
                continue
            try:
                with open(path, "rb") as fh:
                    if needle not in fh.read():
                        continue
            except OSError:
                continue
            feed = self.feeds[key] = TraceFeed(key)
            feed.poll()
            return feed.state.take(attempt_dir)
        return None

    def forget(self, paths: list[str]) -> None:
        """Remove these logs (their launcher is gone and none of its tasks runs)."""
        for p in paths:
            self.feeds.pop(p, None)
            try:
                os.unlink(p)
            except OSError:
                pass

    def _sweep(self) -> None:
        now = time.time()
        for path in self.dir.glob("launcher-*.strace"):
            try:
                if now - path.stat().st_mtime > STALE_LOG:
                    path.unlink()
            except OSError:
                continue


class AwaitingLineage:
    """Ended tasks whose outcome waits for the tracer to log their exit. Their slots are
    free already; each outcome is complete (with its files) once the log shows the exit, or
    after EXIT_PATIENCE with what was logged."""

    def __init__(self) -> None:
        self.tasks: dict[str, tuple[TaskProcess, AttemptOutcome, float]] = {}

    def __bool__(self) -> bool:
        return bool(self.tasks)

    def __contains__(self, job: object) -> bool:
        return job in self.tasks

    def add(self, job: str, task: TaskProcess, outcome: AttemptOutcome) -> None:
        self.tasks[job] = (task, outcome, time.monotonic() + EXIT_PATIENCE)

    def collect(self, shared: SharedTrace, logs: list[str] | None) -> dict[str, AttemptOutcome]:
        """The outcomes now complete, by job (`logs`: the launcher's, to follow too)."""
        if not self.tasks:
            return {}
        if logs is not None:
            shared.watch(logs)
        now, done = time.monotonic(), {}
        for job, (task, outcome, deadline) in list(self.tasks.items()):
            adir = str(task.attempt_dir)
            ops = shared.ready(adir, task.pid)
            if ops is None and now < deadline:
                continue
            if ops is None:
                ops = shared.ops_for(adir, task.pid)
            task.add_files(outcome, ops)
            del self.tasks[job]
            done[job] = outcome
        return done


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
