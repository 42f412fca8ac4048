"""Application services: the one function each CLI command calls.

This is the composition root: it wires sites (executors), the dispatcher and webhook delivery
together, so the layers below stay ignorant of one another and the CLI stays thin.
"""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from akoflow.dispatch.chain import dispatcher_name
from akoflow.dispatch.lock import DispatchLock
from akoflow.dispatch.runner import Progress, dispatch_once, run_loop, start_chain
from akoflow.dispatch.types import CycleReport, DispatchConfig
from akoflow.events import deliver
from akoflow.executor import JobRef, JobState, akoflow_argv
from akoflow.manifest import (
    WORKFLOW_ENDED,
    Manifest,
    ManifestError,
    WorkflowRecord,
    akoflow_home,
)
from akoflow.sites import SiteResolver
from akoflow.spec import WorkflowSpec, load_workflow


def home() -> Path:
    return akoflow_home()


def open_manifest() -> Manifest:
    return Manifest(home() / "manifest.db")


def dispatch_config() -> DispatchConfig:
    cfg = DispatchConfig()
    interval = os.environ.get("AKOFLOW_SAMPLE_INTERVAL")
    if interval:
        cfg.sample_interval = float(interval)
    grace = os.environ.get("AKOFLOW_LOST_GRACE")
    if grace:
        cfg.lost_grace = float(grace)
    spacing = os.environ.get("AKOFLOW_CHAIN_SPACING")
    if spacing:
        cfg.chain_spacing = float(spacing)
    return cfg


def load_spec(path: str | Path, *, strict: bool = False, site: str | None = None,
              params: dict[str, str] | None = None) -> WorkflowSpec:
    """A workflow from AkôFlow YAML, or from a Python file using `@wf.job` decorators."""
    if str(path).endswith(".py"):
        from akoflow.spec.python_api import load_python

        spec = load_python(path, params)
    else:
        spec = load_workflow(path, strict=strict)
    if site:
        spec.runtime = site
    return spec


def register(m: Manifest, spec: WorkflowSpec, resolver: SiteResolver | None = None
             ) -> WorkflowRecord:
    """Check every site the workflow names, then write it to the manifest."""
    resolver = resolver or SiteResolver()
    for runtime in sorted({spec.effective_runtime(a) for a in spec.activities}):
        resolver.check(runtime)
    if spec.schedule:  # a placement plugin that cannot load fails now, not mid-run
        from akoflow.scheduling.policies import load_policy

        load_policy(spec.schedule)
    return m.register_workflow(spec, run_root=str(home() / "runs"),
                               work_dir=_host_work_dir(spec), site=spec.runtime)


def _host_work_dir(spec: WorkflowSpec) -> str | None:
    """`mountPath` seen from the host, when a volume maps it (AkôFlow's shared volume)."""
    if not spec.mount_path:
        return None
    for v in spec.volumes:
        if v.container.rstrip("/") == spec.mount_path.rstrip("/"):
            return v.host
    return None


def run(m: Manifest, wf_id: int, progress: Progress | None = None,
        resolver: SiteResolver | None = None) -> str:
    return run_loop(m, home(), wf_id, resolver or SiteResolver(), dispatch_config(),
                    deliver, progress)


def dispatch(m: Manifest, wf_id: int) -> CycleReport | None:
    """One cycle. Executors are told the caller will not stay around (`detached`), so the
    local executor wraps tasks in `akoflow worker` processes that report for themselves."""
    resolver = SiteResolver(overrides={"*": {"detached": True}})
    return dispatch_once(m, home(), wf_id, resolver, dispatch_config(), deliver)


def unattended(m: Manifest, wf: WorkflowRecord) -> bool:
    """A workflow still to run that nobody dispatches (its dispatcher died, say): no process
    holds its dispatch lock and, where dispatchers run as batch jobs, none is queued."""
    if m.workflow_status(wf.id) in WORKFLOW_ENDED:
        return False
    lock = DispatchLock(home(), wf.id)
    if not lock.acquire():
        return False
    lock.release()
    if wf.site:
        host = SiteResolver()(wf.site)
        if host.hosts_dispatcher and any(
                st in (JobState.PENDING, JobState.RUNNING)
                for _, st in host.dispatcher_jobs(dispatcher_name(m, wf.id))):
            return False
    return True


def start(m: Manifest, wf: WorkflowRecord) -> str:
    """Start dispatching a registered workflow without staying around: the first dispatcher
    batch job on sites that run dispatchers as jobs, else a background loop here."""
    job = start_chain(m, wf.id, SiteResolver())
    if job is not None:
        return f"job {job}"
    return f"pid {start_detached(wf)}"


def start_detached(wf: WorkflowRecord) -> int:
    """Start a background dispatcher loop for a local workflow; returns its pid."""
    log_path = Path(wf.run_dir) / "dispatcher.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_fh:
        proc = subprocess.Popen(
            [*akoflow_argv(), "run", "--resume", str(wf.id), "--quiet"],
            stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    return proc.pid


def cancel(m: Manifest, wf_id: int, names: Sequence[str] | None = None) -> int | None:
    """Mark the workflow (or some activities) cancelled, then stop their jobs; how many were
    stopped, or None when the whole workflow was over already (nothing is touched)."""
    wf = m.get_workflow(wf_id)
    if not names and wf.status in WORKFLOW_ENDED:
        return None
    if names:
        unknown = [n for n in names if m.activity_named(wf_id, n) is None]
        if unknown:
            raise ManifestError(f"workflow {wf.id} has no activity {unknown[0]!r}")
    live = m.cancel(wf_id, names or None)
    by_exec: dict[str, list[JobRef]] = defaultdict(list)
    for la in live:
        by_exec[la.executor].append(JobRef(la.job_id, la.job_name, la.attempt_dir,
                                           la.submitted_at))
    resolver = SiteResolver()
    for runtime, refs in by_exec.items():
        resolver(runtime).cancel(refs)
    if not names and wf.site:
        host = resolver(wf.site)
        if host.hosts_dispatcher:  # the chain ends here: no dispatcher job may wait on
            pending = [j for j, st in host.dispatcher_jobs(dispatcher_name(m, wf.id))
                       if st is JobState.PENDING]
            host.cancel([JobRef(j, "", "", 0.0) for j in pending])
    return len(live)


def retry(m: Manifest, wf_id: int, names: Sequence[str] | None = None) -> int:
    if names:
        for n in names:
            if m.activity_named(wf_id, n) is None:
                raise ManifestError(f"workflow {wf_id} has no activity {n!r}")
    return m.retry(wf_id, names or None)


def controllable(m: Manifest, ref: str) -> WorkflowRecord:
    """The workflow `ref`, refusing a copy pulled from a cluster: it runs there, and is
    controlled there (`SITE:ID`)."""
    wf = m.find_workflow(ref)
    origin = m.origin_of(wf.id)
    if origin is not None:
        raise ManifestError(f"workflow {wf.id} is a copy pulled from {origin}; it runs there: "
                            f"use `akoflow cancel|retry {origin}`")
    return wf


def cancel_command(m: Manifest, ref: str, names: Sequence[str] | None = None
                   ) -> dict[str, object]:
    """`akoflow cancel`: what was stopped, as the CLI prints it (here or from a laptop)."""
    wf = controllable(m, ref)
    stopped = cancel(m, wf.id, names or None)
    return {"id": wf.id, "stopped_jobs": stopped or 0, "status": m.workflow_status(wf.id),
            "was": wf.status, "over": stopped is None}


def retry_command(m: Manifest, ref: str, names: Sequence[str] | None = None,
                  start_dispatcher: bool = True) -> dict[str, object]:
    """`akoflow retry`: reset, then start a dispatcher when there is work and nobody
    dispatches it (a workflow whose dispatcher died gets one even with nothing to reset)."""
    wf = controllable(m, ref)
    count = retry(m, wf.id, names or None)
    wanted = count > 0 or unattended(m, wf)
    pid = start(m, wf) if wanted and start_dispatcher else None
    return {"id": wf.id, "reset": count, "dispatcher": pid}


def register_once(m: Manifest, spec: WorkflowSpec, key: str) -> tuple[WorkflowRecord, bool]:
    """Register `spec` unless a submission with idempotency `key` already did (a laptop
    repeating a submit whose connection broke); (workflow, newly registered)."""
    with m.transaction():
        existing = m.submission(key)
        if existing is not None:
            return m.get_workflow(existing, texts=False), False
        wf = register(m, spec)
        m.record_submission(key, wf.id)
    return wf, True
