"""Attempt claims and process groups for the local executor: who owns an attempt, and
stopping a task with everything it started (SIGTERM to its group, SIGKILL after a grace)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from akoflow.port import JobRef, protocol
from akoflow.worker.monitor import TaskProcess, pid_owner_matches

CANCEL_CLAIM = b"cancelled\n143\n"  # no pid: no task ever ran under this claim


def claim_for_cancel(adir: Path) -> int | None:
    """Write the attempt's pid file as a cancelled claim (exit code 143) unless a task has
    claimed it already; then that task's pid."""
    try:
        fd = os.open(adir / protocol.PID, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return claim_owner(adir)
    except OSError:
        return None
    try:
        os.write(fd, CANCEL_CLAIM)
    finally:
        os.close(fd)
    return None


def claim_owner(adir: Path, patience: float = 1.0) -> int | None:
    """The pid that claimed the attempt (None for a cancel's claim); the claim file may be
    caught mid-write."""
    end = time.time() + patience
    while True:
        try:
            text = (adir / protocol.PID).read_bytes()
        except OSError:
            text = b""
        first, newline, _ = text.partition(b"\n")
        if newline and first == CANCEL_CLAIM.partition(b"\n")[0]:
            return None
        if newline and first.isdigit():
            return int(first)
        if time.time() >= end:
            return None
        time.sleep(0.01)


def stop_attempts(jobs: Sequence[JobRef], targets: set[str], running: Mapping[str, TaskProcess],
                  unheard: dict[str, TaskProcess], cgroup: str | None) -> None:
    """Stop the attempts of `jobs` (job ids `targets`) wherever they are: claimed first, so a
    start after this refuses to run, then their process groups, SIGKILL after a grace."""
    for job in targets & set(unheard):
        # Sent, never confirmed: take the claim ourselves so that a late start refuses
        # to run; if the task got there first, its pid is in the file now.
        task = unheard.pop(job)
        pid = claim_for_cancel(task.attempt_dir)
        if pid is not None and pid_owner_matches(pid, task.attempt_dir):
            task.pid = pid
    # Not ours: another dispatcher may hold them queued. Claim every one before any
    # kill frees a slot there, so that a start after this cancel refuses to run; a task
    # that got there first is found by its pid.
    tasks: list[TaskProcess] = []
    for ref in jobs:
        found = running.get(ref.job_id or ref.attempt_dir)
        if found is None:
            pid = claim_for_cancel(Path(ref.attempt_dir))
            if pid is None or not pid_owner_matches(pid, Path(ref.attempt_dir)):
                continue
            found = TaskProcess(Path(ref.attempt_dir), Path(ref.attempt_dir),
                                cgroup_root=cgroup)
            found.pid = pid
        tasks.append(found)
    for victim in tasks:
        victim.terminate()
    wait_then_kill(tasks)


def wait_then_kill(tasks: list[TaskProcess], grace: float = 2.0) -> None:
    """SIGTERM was sent; give process groups `grace` seconds, then SIGKILL what is left."""
    end = time.time() + grace
    pending = list(tasks)
    while pending and time.time() < end:
        pending = [t for t in pending if group_alive(t.pid)]
        if pending:
            for t in pending:
                if t.child:
                    try:
                        os.waitpid(t.pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
            time.sleep(0.05)
    for t in pending:
        t.kill(9)
    for t in tasks:
        t.stop_leftovers()  # what left the group (a cgroup reaches it)


def group_alive(pgid: int) -> bool:
    if pgid <= 0:  # never started (killpg(0) would mean our own group)
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False
