"""Drive dispatch cycles: exactly one (`akoflow dispatch`), or a foreground loop (`run`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from akoflow.dispatch import chain
from akoflow.dispatch.cycle import Dispatcher, Notifier, Resolver
from akoflow.dispatch.lock import DispatchLock
from akoflow.dispatch.types import CycleReport, DispatchConfig
from akoflow.executor import Executor
from akoflow.manifest import WORKFLOW_ENDED, Manifest

log = logging.getLogger(__name__)
Progress = Callable[[CycleReport | None], None]


def dispatch_once(
    m: Manifest, home: Path, wf_id: int, resolve: Resolver,
    config: DispatchConfig | None = None, notifier: Notifier | None = None,
) -> CycleReport | None:
    """One cycle under the dispatch lock; None when another dispatcher holds it."""
    lock = DispatchLock(home, wf_id)
    if not lock.acquire():
        log.info("workflow %d: another dispatcher is active; nothing to do", wf_id)
        return None
    try:
        d = Dispatcher(m, wf_id, resolve, config, notifier)
        try:
            host = _dispatcher_host(m, wf_id, resolve)
            log_dir = Path(m.get_workflow(wf_id, texts=False).run_dir) / "dispatcher"
            report = d.cycle(force_poll=True)
            if host is not None and chain.current_job() is not None:
                chain.queue_successor(m, wf_id, host, log_dir, spacing=(
                    config or DispatchConfig()).chain_spacing, finished=report.finished)
            return report
        finally:
            d.close()
    finally:
        lock.release()


def _dispatcher_host(m: Manifest, wf_id: int, resolve: Resolver) -> Executor | None:
    """The executor of the workflow's site, when it runs dispatchers as batch jobs."""
    site = m.get_workflow(wf_id, texts=False).site
    if not site:
        return None
    ex = resolve(site)
    return ex if ex.hosts_dispatcher else None


def start_chain(m: Manifest, wf_id: int, resolve: Resolver) -> str | None:
    """Queue the first dispatcher job of a workflow whose site runs dispatchers as jobs."""
    host = _dispatcher_host(m, wf_id, resolve)
    if host is None:
        return None
    log_dir = Path(m.get_workflow(wf_id, texts=False).run_dir) / "dispatcher"
    return chain.queue_link(m, wf_id, host, log_dir, after_any=[], delay=0)[0]


def run_loop(
    m: Manifest, home: Path, wf_id: int, resolve: Resolver,
    config: DispatchConfig | None = None, notifier: Notifier | None = None,
    progress: Progress | None = None, idle_wait: float = 0.25,
) -> str:
    """Cycle until the workflow ends; returns its final status.

    If another dispatcher holds the lock, watch the manifest and take over when it lets go
    (for example after it was killed), so `run --resume` is always safe to type.
    """
    lock = DispatchLock(home, wf_id)
    while not lock.acquire():
        status = m.get_workflow(wf_id, texts=False).status
        if status in WORKFLOW_ENDED:
            return status
        if progress is not None:
            progress(None)
        time.sleep(idle_wait)
    try:
        d = Dispatcher(m, wf_id, resolve, config, notifier)
        try:
            report = d.cycle(force_poll=True)
            while not report.finished:
                if progress is not None:
                    progress(report)
                _wait(d, idle_wait)
                report = d.cycle(force_poll=False)
            if progress is not None:
                progress(report)
            return report.workflow_status
        finally:
            d.close()
    finally:
        lock.release()


def _wait(d: Dispatcher, idle_wait: float) -> None:
    busy = [ex for ex in d.executors.values() if ex.busy()]
    if not busy:
        time.sleep(idle_wait)
        return
    share = idle_wait / len(busy)
    for ex in busy:
        ex.wait(share)
