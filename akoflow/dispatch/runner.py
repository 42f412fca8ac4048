"""Drive dispatch cycles: exactly one (`akoflow dispatch`), or a foreground loop (`run`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from akoflow.dispatch import chain, packing
from akoflow.dispatch.cycle import Dispatcher, Notifier
from akoflow.dispatch.lock import DispatchLock
from akoflow.dispatch.types import CycleReport, DispatchConfig, Resolver
from akoflow.manifest import WORKFLOW_ENDED, Manifest
from akoflow.port import Executor, dispatcher_host, in_process
from akoflow.port.home import current_job

log = logging.getLogger(__name__)
Progress = Callable[[CycleReport | None], None]
HEARTBEAT = 10.0  # seconds between "a dispatcher is at work" marks of a long run


def _record_failure(m: Manifest, wf_id: int, exc: BaseException) -> None:
    """Leave why this dispatcher stops in the manifest, so `status`, `list` and `logs` can
    say it instead of showing a workflow that runs forever (best effort: the manifest may
    be what failed)."""
    why = f"{type(exc).__name__}: {exc}"
    filename = getattr(exc, "filename", None)
    if filename and str(filename) not in why:
        why += f" ({filename})"
    try:
        m.dispatcher_failed(wf_id, why)
    except Exception as again:  # the log keeps both
        log.error("could not record the dispatcher's failure (%s): %s", again, why)


def dispatch_once(
    m: Manifest, home: Path, wf_id: int, resolve: Resolver,
    config: DispatchConfig | None = None, notifier: Notifier | None = None,
) -> CycleReport | None:
    """One cycle under the dispatch lock; None when another dispatcher holds it."""
    try:
        return _dispatch_once(m, home, wf_id, resolve, config, notifier)
    except Exception as exc:
        _record_failure(m, wf_id, exc)
        raise


def _dispatch_once(
    m: Manifest, home: Path, wf_id: int, resolve: Resolver,
    config: DispatchConfig | None, notifier: Notifier | None,
) -> CycleReport | None:
    lock = DispatchLock(home, wf_id)
    if not lock.acquire():
        log.info("workflow %d: another dispatcher is active; nothing to do", wf_id)
        return None
    try:
        m.dispatcher_alive(wf_id)
        d = Dispatcher(m, wf_id, resolve, config, notifier)
        try:
            host = _dispatcher_host(m, wf_id, resolve)
            log_dir = Path(m.get_workflow(wf_id, texts=False).run_dir) / "dispatcher"
            if host is not None and current_job() is not None and packing.packs(host):
                # a dispatcher job of a packed site is an allocation: it leads from there
                return packing.lead(d, m, wf_id, host, log_dir, config or DispatchConfig())
            report = d.cycle(force_poll=True)
            if host is not None and current_job() is not None:
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
    return ex if dispatcher_host(ex) is not None else None


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
    try:
        return _run_loop(m, home, wf_id, resolve, config, notifier, progress, idle_wait)
    except Exception as exc:
        _record_failure(m, wf_id, exc)
        raise


def _run_loop(
    m: Manifest, home: Path, wf_id: int, resolve: Resolver, config: DispatchConfig | None,
    notifier: Notifier | None, progress: Progress | None, idle_wait: float,
) -> str:
    lock = DispatchLock(home, wf_id)
    while not lock.acquire():
        status = m.get_workflow(wf_id, texts=False).status
        if status in WORKFLOW_ENDED:
            return status
        if progress is not None:
            progress(None)
        time.sleep(idle_wait)
    try:
        m.dispatcher_alive(wf_id)
        seen = time.monotonic()
        d = Dispatcher(m, wf_id, resolve, config, notifier)
        try:
            report = d.cycle(force_poll=True)
            while not report.finished:
                if progress is not None:
                    progress(report)
                _wait(d, idle_wait)
                report = d.cycle(force_poll=False)
                if time.monotonic() - seen > HEARTBEAT:
                    m.dispatcher_alive(wf_id)
                    seen = time.monotonic()
            if progress is not None:
                progress(report)
            return report.workflow_status
        finally:
            d.close()
    finally:
        lock.release()


def _wait(d: Dispatcher, idle_wait: float) -> None:
    busy = [r for ex in d.sites if (r := in_process(ex)) is not None and r.busy()]
    if not busy:
        time.sleep(idle_wait)
        return
    share = idle_wait / len(busy)
    for runner in busy:
        runner.wait(share)
