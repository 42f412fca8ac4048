"""Self-chaining dispatcher jobs: no akoflow process lives between two dispatch cycles.

Dispatchers are queued in links of two jobs: the dispatcher D, which waits for the FIRST
in-flight job of the workflow to end (`afterany:a?afterany:b`) and a minimum spacing, and
its guard G (`afterany:D`), which starts when D ends however it ends (scancel, node failure,
a crash at any line before D queued its own successor). After its cycle a dispatcher queues
the next link, then cancels every other pending dispatcher of its workflow (its own guard
among them). A crash between those two steps leaves an extra link, which the next
dispatcher cancels; the chain itself never breaks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from akoflow.manifest import Manifest
from akoflow.port import (
    DispatcherHost,
    Executor,
    ExecutorError,
    JobRef,
    JobState,
    akoflow_argv,
    dispatcher_host,
)
from akoflow.port.home import current_job

log = logging.getLogger(__name__)
MAX_DEPENDENCIES = 100  # a dependency list is a command-line argument: keep it bounded


def dispatcher_name(m: Manifest, wf_id: int) -> str:
    """`akoflow.<wf>.dispatcher.<manifest instance>`: two manifests of one user may both have
    a workflow 1, and neither may cancel the other's dispatchers."""
    return f"akoflow.{wf_id}.dispatcher.{m.instance_id()}"


def dispatcher_argv(wf_id: int, python: str | None = None) -> list[str]:
    return [*akoflow_argv(python), "dispatch", str(wf_id)]


def _host(ex: Executor) -> DispatcherHost:
    host = dispatcher_host(ex)
    if host is None:
        raise ExecutorError(f"site {ex.site} cannot run dispatcher jobs")
    return host


def queue_link(m: Manifest, wf_id: int, ex: Executor, log_dir: Path, *,
               after_any: Sequence[str], delay: float) -> tuple[str, str]:
    """Queue a dispatcher and its guard; returns their job ids."""
    python = ex.config.get("python")
    argv = dispatcher_argv(wf_id, str(python) if python else None)
    name = dispatcher_name(m, wf_id)
    host = _host(ex)
    job = host.submit_dispatcher(name, argv, after_any=list(after_any)[:MAX_DEPENDENCIES],
                                 delay=delay, log_dir=log_dir)
    guard = host.submit_dispatcher(name, argv, after_any=[job], delay=0, log_dir=log_dir)
    m.set_dispatcher_job(wf_id, job)
    return job, guard


def cancel_pending(m: Manifest, ex: Executor, wf_id: int, keep: Sequence[str] = ()) -> None:
    """Cancel the workflow's pending dispatchers except `keep` (never the running one)."""
    me = current_job()
    host = dispatcher_host(ex)
    if host is None:
        return
    stale = [jid for jid, state in host.dispatcher_jobs(dispatcher_name(m, wf_id))
             if state is JobState.PENDING and jid not in keep and jid != me]
    if stale:
        ex.cancel([JobRef(j, "", "", 0.0) for j in stale])


def queue_successor(m: Manifest, wf_id: int, ex: Executor, log_dir: Path, *, spacing: float,
                    finished: bool) -> str | None:
    """After a cycle: one link queued if work remains, none otherwise; nothing else waits."""
    if finished:
        cancel_pending(m, ex, wf_id)
        m.set_dispatcher_job(wf_id, None)
        return None
    in_flight = [la.job_id for la in m.live_attempts(wf_id)
                 if la.job_id and la.site == ex.site]
    try:
        link = queue_link(m, wf_id, ex, log_dir, after_any=in_flight, delay=spacing)
    except ExecutorError as exc:  # this job's guard carries the chain on
        log.warning("could not queue the next dispatcher: %s", exc)
        return None
    cancel_pending(m, ex, wf_id, keep=link)
    return link[0]
