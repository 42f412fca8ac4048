"""FluxExecutor: Flux's pure pieces (executors/flux.py) run through a BatchExecutor.

Each attempt is one `flux batch` of a script rendered from templates/flux.sh.j2 that execs
`akoflow worker <attempt dir>`; the worker writes result.json, which the dispatcher ingests.
Status is one `flux jobs -a` per poll, filtered to akoflow's job names.

Dispatcher wake-up: Flux ANDs every `--dependency` (RFC 26 has no any-of), so "start when the
first of several jobs ends" cannot be said. With one job in flight the next dispatcher waits
on `afterany:ID` (exact); with several it starts on a timer (`--begin-time=+dispatcher_wake`)
so no branch waits for another, at the cost of at most one short dispatcher job per interval.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.executor import JobRef, JobState, JobStatus, SpecError, SubmitError, TaskLaunch

from . import flux
from .base import BatchExecutor, Transport

log = logging.getLogger(__name__)
NAME_PREFIX = "akoflow."
MEMORY_POLICIES = ("ignore", "refuse")


class FluxExecutor(BatchExecutor):
    kind = "flux"
    site_keys = frozenset({"dispatcher_wake", "memory_policy"})
    hosts_dispatcher = True

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.memory_policy = str(config.get("memory_policy") or "ignore")
        if self.memory_policy not in MEMORY_POLICIES:
            raise SpecError(f"site {site}: memory_policy must be one of "
                            f"{', '.join(MEMORY_POLICIES)}, got {self.memory_policy!r}")
        self.wake = float(config.get("dispatcher_wake", 30))

    def _submit_one(self, ln: TaskLaunch) -> str:
        job = replace(ln, resources=self.with_defaults(ln.resources))
        script = flux.render_script(job, worker_argv=self.worker_argv(ln), modules=self.modules,
                                    env=self.env, log_dir=str(ln.attempt_dir),
                                    memory_policy=self.memory_policy)
        path = ln.attempt_dir / "job.sh"
        path.write_text(script)
        deps = flux.dependency_options(after_ok=ln.after_ok)
        return flux.parse_submit(self.command(flux.submit_argv(str(path), dependencies=deps)))[0]

    def _queue(self) -> list[flux.QueueEntry]:
        return flux.parse_queue(self.command(flux.status_argv()), NAME_PREFIX)

    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        try:
            queue = {e.job_id: e.status for e in self._queue()}
        except SubmitError as exc:  # "status unavailable" never means failed
            log.warning("flux jobs failed; every job's state is unknown: %s", exc)
            return {ref.job_name: JobStatus(JobState.UNKNOWN, message=str(exc)) for ref in jobs}
        out: dict[str, JobStatus] = {}
        for ref in jobs:
            st = queue.get(_canonical(ref.job_id))
            # Purged from the job manager's inactive cache: judged by result.json.
            out[ref.job_name] = st if st is not None else JobStatus(JobState.GONE)
        return out

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        ids = [j for j in (_canonical(r.job_id) for r in jobs) if j]
        if not ids:
            return
        try:
            self.command(flux.cancel_argv(ids), retries=1)
        except SubmitError as exc:  # some already ended: cancel the others one by one
            log.info("flux cancel: %s", exc)
            for jid in ids if len(ids) > 1 else []:
                try:
                    self.command(flux.cancel_argv([jid]), retries=0)
                except SubmitError:
                    pass

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        wanted = set(job_names)
        return {e.name: e.job_id for e in self._queue() if e.name in wanted}

    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """The dispatcher as a small batch job (resources from the site's `dispatcher:`)."""
        launch = self.dispatcher_launch(name, log_dir, memory=False)
        script = flux.render_script(launch, worker_argv=list(argv), modules=self.modules,
                                    env=self.env, log_dir=str(log_dir), parent_uri=True)
        path = log_dir / "dispatcher.sh"
        path.write_text(script)
        ids = [j for j in (_canonical(a) for a in after_any) if j]
        deps = flux.dependency_options(after_any=ids) if len(ids) == 1 else []
        begin = max(delay, self.wake) if len(ids) > 1 else delay
        try:
            out = self.command(flux.submit_argv(str(path), dependencies=deps, begin_after=begin))
        except SubmitError as exc:
            if not deps or "depend" not in f"{exc.stderr}{exc}".lower():
                raise
            # The job it would wait on is already purged: nothing to wait for, start now.
            log.info("dependency refused (%s); queueing the dispatcher without it", exc)
            out = self.command(flux.submit_argv(str(path), begin_after=delay))
        return flux.parse_submit(out)[0]

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        """The ids as this process's own FLUX_JOB_ID spells them when they are the same job,
        so the chain never mistakes the running dispatcher for another one."""
        me = os.environ.get("FLUX_JOB_ID") or ""
        mine = _canonical(me)
        return [(me if mine and e.job_id == mine else e.job_id, e.status.state)
                for e in self._queue() if e.name == name]


def _canonical(job_id: str | None) -> str:
    """`ƒ…` for any spelling of a Flux id; "" for none or garbage."""
    try:
        return flux.canonical_id(job_id) if job_id else ""
    except ValueError:
        return ""
