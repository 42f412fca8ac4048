"""What only some executors can do, each said explicitly: the dispatcher asks for a capability
(`in_process`, `dispatcher_host`) before it uses one, instead of calling defaults that every
executor would inherit.

An adapter declares a capability by subclassing its protocol beside `Executor` (mypy then
holds it to every member); a third-party adapter that has the members is recognised too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeGuard, runtime_checkable

from akoflow.port.executor import Executor, JobState, JobStatus, TaskLaunch
from akoflow.port.records import AttemptOutcome


@runtime_checkable
class InProcessRunner(Protocol):
    """Runs and watches tasks inside the dispatcher's own process (this machine, dockerd):
    it knows job ids before submission, tracks changes itself, holds the workers' reports
    in memory and has room the dispatcher must respect."""

    # True when it runs tasks on nodes whose room the dispatcher must respect: only what
    # has room is claimed, placed by the policy.
    bounded: bool
    # How much work (as a fraction of capacity) may wait in its own queue, so a slot is
    # refilled the moment a task ends.
    prefetch: float

    def planned_job_id(self, launch: TaskLaunch) -> str:
        """The job id the launch will have, known before submission (recorded with the
        intent, so a crash in between is repaired by id)."""
        ...

    def poll_changes(self) -> dict[str, JobStatus]:
        """Status changes since the last call, keyed by job id (O(changed) cycles)."""
        ...

    def collect_reports(self) -> dict[str, AttemptOutcome]:
        """Outcomes already in memory (in-process workers), keyed by job id."""
        ...

    def wait(self, timeout: float) -> None:
        """Block until something may have changed, or `timeout` seconds pass."""
        ...

    def busy(self) -> bool:
        """True while this process itself has tasks to watch."""
        ...


@runtime_checkable
class DispatcherHost(Protocol):
    """A batch scheduler that can run the dispatcher itself as a job (the chain of
    `akoflow/dispatch/chain.py`), and may hold jobs on dependencies."""

    # False turns hosting off for a class that has the members (a site without it).
    hosts_dispatcher: bool
    # The scheduler can hold a job until others succeed (`afterok`) and reports such a job
    # as never runnable once one of them failed: children may be queued ahead of their
    # parents (TaskLaunch.after_ok).
    chains_after_ok: bool

    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """Queue a dispatcher job running `argv` that starts once any job in `after_any` has
        ended (or at once if empty), and not before `delay` seconds from now."""
        ...

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        """Dispatcher jobs named `name` the scheduler knows, with their states."""
        ...


# What each executor class can do, asked once per class: a protocol check looks at every
# member (tens of microseconds), and the dispatcher asks several times per cycle.
_capable: dict[tuple[type, type], bool] = {}


def _has(ex: Executor, capability: type) -> bool:
    key = (type(ex), capability)
    known = _capable.get(key)
    if known is None:
        known = _capable[key] = isinstance(ex, capability)
    return known


def _runs_in_process(ex: Executor) -> TypeGuard[InProcessRunner]:
    return _has(ex, InProcessRunner)


def _hosts(ex: Executor) -> TypeGuard[DispatcherHost]:
    return _has(ex, DispatcherHost)


def in_process(ex: Executor) -> InProcessRunner | None:
    """`ex` as an in-process runner, or None when it is a scheduler the dispatcher polls."""
    return ex if _runs_in_process(ex) else None


def dispatcher_host(ex: Executor) -> DispatcherHost | None:
    """`ex` as a host of dispatcher jobs, or None when the dispatcher runs where it was
    started."""
    return ex if _hosts(ex) and ex.hosts_dispatcher else None


def chains_after_ok(ex: Executor) -> bool:
    """Whether children may be queued ahead of their parents on `ex`."""
    return _hosts(ex) and ex.chains_after_ok
