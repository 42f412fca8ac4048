"""Application services: the one function each CLI command calls.

This is the composition root: it wires sites (executors), the dispatcher and webhook delivery
together, so the layers below stay ignorant of one another and the CLI stays thin.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from akoflow.dispatch.chain import dispatcher_name
from akoflow.dispatch.lock import DispatchLock
from akoflow.dispatch.runner import Progress, dispatch_once, run_loop, start_chain
from akoflow.dispatch.types import CycleReport, DispatchConfig
from akoflow.events import deliver
from akoflow.manifest import WORKFLOW_ENDED, Manifest, ManifestError, WorkflowRecord
from akoflow.port import (
    ExecutorError,
    JobRef,
    JobState,
    Node,
    akoflow_argv,
    akoflow_home,
    dispatcher_host,
)
from akoflow.sites import SiteError, SiteResolver, load_site, site_problem
from akoflow.spec import WorkflowSpec, load_workflow

if TYPE_CHECKING:  # loaded by the commands that need them, not by every one
    from akoflow.provenance.crate import CrateResult
    from akoflow.provenance.crate_payload import Limits
    from akoflow.scheduling.simulator import SimResult
    from akoflow.scheduling.workload import Workload


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


def site_warnings(spec: WorkflowSpec) -> list[str]:
    """Sites the workflow names that exist here but cannot run (a missing optional package),
    for `validate`; unknown sites are not reported: a file may be checked on a laptop for a
    cluster whose profile lives there."""
    out = []
    for runtime in sorted({spec.effective_runtime(a) for a in spec.activities}):
        try:
            problem = site_problem(runtime)
        except SiteError:
            continue
        if problem:
            out.append(f"{problem} (run and submit will refuse it)")
    return out


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


def dispatch(m: Manifest, ref: str) -> tuple[WorkflowRecord, CycleReport | None]:
    """One cycle of workflow `ref`. Executors are told the caller will not stay around
    (`detached`), so the local executor wraps tasks in `akoflow worker` processes that
    report for themselves."""
    wf = m.find_workflow(ref)
    resolver = SiteResolver(overrides={"*": {"detached": True}})
    return wf, dispatch_once(m, home(), wf.id, resolver, dispatch_config(), deliver)


def serve_pilot(run_dir: Path, site: str, *, index: int = 0, started: float | None = None,
                parent: int | None = None, spawn: bool = False, lead: bool = False) -> int:
    """`akoflow pilot`: the agent of one node of a packed site's allocation."""
    from akoflow.dispatch.packing import PackedSite

    ex = SiteResolver()(site)
    if not isinstance(ex, PackedSite):
        raise SiteError(f"site {site!r} has no packing: block")
    return ex.serve(run_dir, index=index, started=started, parent=parent, spawn=spawn,
                    lead=lead)


def unattended(m: Manifest, wf: WorkflowRecord) -> bool:
    """A workflow still to run that nobody dispatches (its dispatcher died, say): no process
    holds its dispatch lock and, where dispatchers run as batch jobs, none is queued."""
    if m.workflow_status(wf.id) in WORKFLOW_ENDED:
        return False
    try:
        lock = DispatchLock(home(), wf.id)
        if not lock.acquire():
            return False
        lock.release()
    except OSError:
        pass  # no lock can be taken there, so nobody holds one
    if wf.site:
        host = dispatcher_host(SiteResolver()(wf.site))
        if host is not None and any(
                st in (JobState.PENDING, JobState.RUNNING)
                for _, st in host.dispatcher_jobs(dispatcher_name(m, wf.id))):
            return False
    return True


FIRST_CYCLE_WAIT = 30.0  # seconds `submit` and `retry` wait for the first cycle to begin


class StartError(Exception):
    """The workflow's first dispatcher died before its first cycle: nothing will run."""


def start(m: Manifest, wf: WorkflowRecord, *, wait: float = 0.0) -> str:
    """Start dispatching a registered workflow without staying around: the first dispatcher
    batch job on sites that run dispatchers as jobs, else a background loop here.

    With `wait`, return only once the dispatcher's first cycle has begun (or, for a batch
    job, it is still queued after `wait` seconds); raise StartError with its last words if
    it died first, so `submit` never prints an id for a workflow nobody will run."""
    resolver = SiteResolver()
    job = start_chain(m, wf.id, resolver)
    if job is not None:
        if wait > 0:
            _await_batch_start(m, wf, resolver, wait)
        return f"job {job}"
    proc = start_detached(wf)
    if wait > 0:
        _await_local_start(m, wf, proc, wait)
    return f"pid {proc.pid}"


def submit(m: Manifest, spec: WorkflowSpec,
           prepare: Callable[[WorkflowRecord], None] | None = None, *, wait: float = 0.0
           ) -> tuple[WorkflowRecord, str]:
    """Register a workflow and start its dispatcher (`akoflow submit`, a service's POST).

    `prepare` runs between the two (a service copies uploaded files into the work directory).
    If the dispatcher cannot be started (no scheduler here, say), the workflow is cancelled
    and settled before the error goes up, so no registered run is left that nobody will
    ever dispatch. A dispatcher that started and then died (StartError, with `wait`) leaves
    the workflow registered: `akoflow retry` runs it once the cause is fixed."""
    wf = register(m, spec)
    try:
        if prepare is not None:
            prepare(wf)
        return wf, start(m, wf, wait=wait)
    except StartError:
        raise
    except BaseException:
        m.cancel(wf.id)
        m.finalize_workflow(wf.id)
        raise


def retry_and_start(m: Manifest, wf: WorkflowRecord, names: Sequence[str] | None = None,
                    *, start_dispatcher: bool = True, wait: float = 0.0
                    ) -> tuple[int, str | None]:
    """Reset failed activities, then start a dispatcher if anything was reset or nobody
    dispatches this unfinished workflow; (activities reset, dispatcher or None)."""
    count = retry(m, wf.id, names)
    wanted = count > 0 or unattended(m, wf)
    return count, (start(m, wf, wait=wait) if wanted and start_dispatcher else None)


def start_detached(wf: WorkflowRecord) -> subprocess.Popen[bytes]:
    """Start a background dispatcher loop for a local workflow."""
    log_path = Path(wf.run_dir) / "dispatcher.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_fh:
        return subprocess.Popen(
            [*akoflow_argv(), "run", "--resume", str(wf.id), "--quiet"],
            stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )


def _await_local_start(m: Manifest, wf: WorkflowRecord, proc: subprocess.Popen[bytes],
                       wait: float) -> None:
    end = time.monotonic() + wait
    while time.monotonic() < end:
        now = m.get_workflow(wf.id, texts=False)
        if now.dispatcher_seen_at is not None or now.status in WORKFLOW_ENDED:
            return
        if now.dispatcher_error or proc.poll() is not None:
            if m.get_workflow(wf.id, texts=False).dispatcher_seen_at is not None:
                return  # it started, then ended (a tiny workflow)
            raise StartError(_died(m, wf))
        time.sleep(0.02)


def _await_batch_start(m: Manifest, wf: WorkflowRecord, resolver: SiteResolver,
                       wait: float) -> None:
    host = dispatcher_host(resolver(wf.site or wf.runtime))
    end = time.monotonic() + wait
    while time.monotonic() < end:
        now = m.get_workflow(wf.id, texts=False)
        if now.dispatcher_seen_at is not None or now.status in WORKFLOW_ENDED:
            return
        states = [st for _, st in host.dispatcher_jobs(dispatcher_name(m, wf.id))] \
            if host is not None else []
        queued = [st for st in states
                  if st in (JobState.PENDING, JobState.RUNNING, JobState.UNKNOWN)]
        if now.dispatcher_error or not queued:  # ended (or gone) without a first cycle
            time.sleep(1.0)  # the heartbeat may be a commit away
            if m.get_workflow(wf.id, texts=False).dispatcher_seen_at is None:
                raise StartError(_died(m, wf))
            return
        time.sleep(0.5)


def _died(m: Manifest, wf: WorkflowRecord) -> str:
    why = m.get_workflow(wf.id, texts=False).dispatcher_error or last_log_line(wf.run_dir)
    if why:
        m.dispatcher_failed(wf.id, why)  # readers show it at once (no start-up grace)
    return (f"workflow {wf.id} was registered, but its dispatcher died before its first "
            f"cycle{': ' + why if why else ''}; fix it and run `akoflow retry {wf.id}`")


START_GRACE = 5.0  # seconds a new workflow may wait for its first dispatcher to show up


def status_report(m: Manifest, wf_id: int) -> dict[str, Any]:
    """`akoflow status --json`: the workflow's report, and whether anyone dispatches it."""
    from akoflow import query

    data = query.status_report(wf_id, manifest=m)
    data["dispatcher_problem"] = dispatcher_problem(m, m.get_workflow(wf_id, texts=False))
    return data


def dispatcher_problem(m: Manifest, wf: WorkflowRecord) -> str | None:
    """A one-line warning when a workflow that is not over has no live dispatcher (it died:
    a crash, a full disk, a batch job that could not import akoflow), else None."""
    if wf.status in WORKFLOW_ENDED:
        return None
    if wf.dispatcher_seen_at is None and not wf.dispatcher_error and \
            time.time() - wf.created_at < START_GRACE:
        return None  # still starting
    try:
        if not unattended(m, wf):
            return None
    except (OSError, ExecutorError, SiteError):
        return None  # cannot tell: say nothing rather than guess
    why = wf.dispatcher_error or last_log_line(wf.run_dir)
    return (f"no dispatcher is alive for workflow {wf.id}"
            f"{'; the last one failed with: ' + why if why else ''}; "
            f"fix it and run `akoflow retry {wf.id}`")


def last_log_line(run_dir: str) -> str | None:
    """The last line a dispatcher wrote: the detached loop's log, or the newest batch
    dispatcher job's output (where an import error of a broken install ends up)."""
    candidates = [Path(run_dir) / "dispatcher.log",
                  *(Path(run_dir) / "dispatcher").glob("*.err"),
                  *(Path(run_dir) / "dispatcher").glob("*.out")]
    newest: tuple[float, Path] | None = None
    for path in candidates:
        try:
            st = path.stat()
        except OSError:
            continue
        if st.st_size and (newest is None or st.st_mtime > newest[0]):
            newest = (st.st_mtime, path)
    if newest is None:
        return None
    from akoflow.port.protocol import tail

    lines = [ln.strip() for ln in tail(newest[1], 2048).splitlines() if ln.strip()]
    return f"{lines[-1][:300]} (in {newest[1]})" if lines else None


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
        by_exec[la.site].append(JobRef(la.job_id, la.job_name, la.attempt_dir,
                                           la.submitted_at))
    resolver = SiteResolver()
    for runtime, refs in by_exec.items():
        resolver(runtime).cancel(refs)
    if not names and wf.site:
        ex = resolver(wf.site)
        host = dispatcher_host(ex)
        if host is not None:  # the chain ends here: no dispatcher job may wait on
            pending = [j for j, st in host.dispatcher_jobs(dispatcher_name(m, wf.id))
                       if st is JobState.PENDING]
            ex.cancel([JobRef(j, "", "", 0.0) for j in pending])
    return len(live)


def retry(m: Manifest, wf_id: int, names: Sequence[str] | None = None) -> int:
    if names:
        for n in names:
            if m.activity_named(wf_id, n) is None:
                raise ManifestError(f"workflow {wf_id} has no activity {n!r}")
    return m.retry(wf_id, names or None)


def write_crate(m: Manifest, wf_id: int, out: str | Path, *, license: str | None = None,
                limits: Limits | None = None) -> CrateResult:
    """The run's RO-Crate. Its license: the one given, else the spec's `license`, else the
    site profile's `license`, else none (the crate says so)."""
    from akoflow.provenance.crate import write_crate as write

    if license is None:
        wf = m.get_workflow(wf_id)
        license = json.loads(wf.spec_json or "{}").get("license") or _site_license(wf)
    return write(m, wf_id, out, license=license, limits=limits)


def _site_license(wf: WorkflowRecord) -> str | None:
    try:
        value = load_site(wf.site or wf.runtime).get("license")
    except SiteError:  # the profile is gone since the run: no default from it
        return None
    return str(value) if value else None


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
    count, pid = retry_and_start(m, wf, names or None, start_dispatcher=start_dispatcher,
                                 wait=FIRST_CYCLE_WAIT)
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


def site_inventory(site: str) -> list[Node]:
    """`akoflow nodes`: what the site's executor reports, with its profile's `nodes:`."""
    from akoflow.scheduling.inventory import site_nodes
    from akoflow.sites import load_site

    return site_nodes(load_site(site), SiteResolver()(site).nodes())


def simulate(workflow: str, nodes_file: str, policy: str | None, alpha: float | None
             ) -> tuple[Workload, list[Node], SimResult]:
    """`akoflow simulate`: the workflow (YAML or WfCommons trace) on a node set, under its
    policy (the one named, else the spec's `schedule`, else AkôScore; `heft` for HEFT)."""
    from akoflow.scheduling.heft import heft
    from akoflow.scheduling.inventory import load_nodes_file
    from akoflow.scheduling.simulator import simulate as run
    from akoflow.scheduling.workload import load_workload

    nodes = load_nodes_file(nodes_file)
    wl = load_workload(workflow)
    name = policy or wl.schedule or "akoscore"
    return wl, nodes, heft(wl, nodes) if name == "heft" else run(wl, nodes, name, alpha)
