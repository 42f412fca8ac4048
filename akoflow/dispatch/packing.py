"""Packing: many short activities inside few allocations, led by the dispatcher job itself.

On a site whose profile has a `packing:` block, the site's executor is a pilot executor (the
adapters' `executors/pilot.py`) and each chained dispatcher job is an allocation of the
packing size. Such a dispatcher does not run one cycle and chain: it *leads*. It starts an
agent on each node of its own allocation (the local executor's machinery: launcher, one
strace, psutil, task.sh's claims) and runs the cycle in a loop, as `akoflow run` does,
feeding its own agents and those of any further allocations the executor asks for, until:

- the workflow is over (the other pilots are told to end, their unstarted requests cancelled);
- its walltime is nearly spent: it leaves, and its guard (a pending dispatcher job waiting
  for it to end, ensured when it starts) leads next, from a new allocation;
- nothing packed has been left to run for `idle_timeout`: it leaves and chains as any
  dispatcher does (on the first in-flight job to end);
- its node's agent died, or the scheduler signals it (scancel, preemption): it leaves, and
  the guard leads next.

It holds the workflow's dispatch lock all along: the one writer of the manifest, as ever.
Agents only read queue files and write event files (executors/pilot_files.py), so a lead
killed at any line leaves nothing the next one cannot judge from the files.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Protocol, runtime_checkable

from akoflow.dispatch import chain
from akoflow.dispatch.cycle import Dispatcher
from akoflow.dispatch.types import CycleReport, DispatchConfig
from akoflow.manifest import Manifest
from akoflow.port import Executor, ExecutorError, JobState, dispatcher_host, in_process
from akoflow.port.home import current_job

log = logging.getLogger(__name__)
HEARTBEAT = 10.0  # seconds between "a dispatcher is at work" marks
IDLE_WAIT = 0.25  # at most this long between two cycles


@runtime_checkable
class PackedSite(Protocol):
    """What a packing executor offers the dispatcher that leads from its allocation."""

    @property
    def idle_timeout(self) -> float: ...

    def lead(self, run_dir: Path, job_id: str) -> None: ...

    def lead_deadline(self) -> float: ...

    def lead_alive(self) -> bool: ...

    def work_left(self, run_dir: Path) -> bool: ...

    def retire(self, run_dir: Path, *, finished: bool) -> None: ...

    def headroom(self, run_dir: Path) -> float: ...

    def serve(self, run_dir: Path, *, index: int = 0, started: float | None = None,
              parent: int | None = None, spawn: bool = False, lead: bool = False) -> int: ...


def packs(ex: Executor) -> bool:
    return isinstance(ex, PackedSite)


class _Signals:
    """SIGTERM/SIGINT end the loop after the current cycle, not in the middle of it."""

    def __init__(self) -> None:
        self.got: int | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._note)

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.got = signum


def lead(d: Dispatcher, m: Manifest, wf_id: int, host: Executor, log_dir: Path,
         config: DispatchConfig) -> CycleReport:
    """Lead the workflow from inside this allocation until one of the reasons above. It
    never leaves a workflow with work left and no successor: a guard that cannot be queued
    (the site's job limit is full) keeps it leading, and it leaves idle only when a new link
    fits under the limit."""
    assert isinstance(host, PackedSite)
    me = current_job() or ""
    run_dir = Path(m.get_workflow(wf_id, texts=False).run_dir)
    signals = _Signals()
    host.lead(run_dir, me)
    guarded = ensure_guard(m, wf_id, host, log_dir, me)
    report = d.cycle(force_poll=True)
    why, idle_since, beat, tried = "finished", None, time.monotonic(), time.monotonic()
    while not report.finished:
        why = _reason(host, run_dir, signals, idle_since)
        idle_since = None if host.work_left(run_dir) else idle_since or time.time()
        if why == "idle" and host.headroom(run_dir) < 2:
            why = ""  # a new link would pass the site's job limit: stay
        if why and why != "signal" and not guarded and time.monotonic() - tried > 5:
            guarded, tried = ensure_guard(m, wf_id, host, log_dir, me), time.monotonic()
        if why and (guarded or why == "signal"):
            break
        _wait(d)
        report = d.cycle(force_poll=False)
        if time.monotonic() - beat > HEARTBEAT:
            m.dispatcher_alive(wf_id)
            beat = time.monotonic()
    else:
        why = "finished"
    log.info("workflow %d: the lead in %s leaves (%s)", wf_id, me, why)
    d.submitter.flush()
    host.retire(run_dir, finished=report.finished)
    if report.finished or why == "idle":
        chain.queue_successor(m, wf_id, host, log_dir, spacing=config.chain_spacing,
                              finished=report.finished)
    return report


def _reason(host: PackedSite, run_dir: Path, signals: _Signals, idle_since: float | None
            ) -> str:
    """Why the lead should leave now ("" to stay)."""
    now = time.time()
    if signals.got is not None:
        return "signal"
    if now >= host.lead_deadline():
        return "walltime"
    if not host.lead_alive():
        return "its agent ended"
    if idle_since is not None and not host.work_left(run_dir) and \
            now - idle_since >= host.idle_timeout:
        return "idle"
    return ""


def ensure_guard(m: Manifest, wf_id: int, host: Executor, log_dir: Path, me: str) -> bool:
    """A pending dispatcher of the workflow that starts when this one ends, however it
    ends: the link queued with this one, or a new one (after a guard became the lead);
    False when none could be queued."""
    name = chain.dispatcher_name(m, wf_id)
    jobs = dispatcher_host(host)
    if jobs is None:
        raise ExecutorError(f"site {host.site} cannot run dispatcher jobs")
    if any(st is JobState.PENDING and j != me for j, st in jobs.dispatcher_jobs(name)):
        return True
    python = host.config.get("python")
    try:
        jobs.submit_dispatcher(name, chain.dispatcher_argv(wf_id, str(python) if python
                                                            else None),
                               after_any=[me] if me else [], delay=0, log_dir=log_dir)
    except ExecutorError as exc:  # it keeps leading, and tries again
        log.info("no guard for this lead yet: %s", exc)
        return False
    return True


def _wait(d: Dispatcher) -> None:
    runners = [r for r in map(in_process, d.sites) if r is not None]
    busy = [r for r in runners if r.busy()]
    if not busy:
        time.sleep(IDLE_WAIT)
        return
    for r in busy:
        r.wait(IDLE_WAIT / len(busy))
