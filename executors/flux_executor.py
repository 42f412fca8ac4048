"""FluxExecutor: Flux's pure pieces (executors/flux.py) on the BatchExecutor's hooks.

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
from pathlib import Path
from typing import Any

from akoflow.port import JobState, SpecError, SubmitError, TaskLaunch

from . import flux
from .base import NAME_PREFIX, Array, BatchExecutor, Transport
from .batch_script import QueueEntry

log = logging.getLogger(__name__)
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

    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None, parent_uri: bool = False) -> str:
        return flux.render_script(job, worker_argv=worker, modules=self.modules, env=self.env,
                                  log_dir=str(log_dir), memory_policy=self.memory_policy,
                                  parent_uri=parent_uri)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        return flux.submit_argv(str(script),
                                dependencies=flux.dependency_options(after_ok=job.after_ok))

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        return flux.parse_submit(stdout)

    def queue(self) -> list[QueueEntry]:
        # Jobs purged from the job manager's inactive cache are GONE, judged by result.json.
        return flux.parse_queue(self.command(flux.status_argv()), NAME_PREFIX)

    def canonical(self, job_id: str | None) -> str:
        """`ƒ…` for any spelling of a Flux id; "" for none or garbage."""
        try:
            return flux.canonical_id(job_id) if job_id else ""
        except ValueError:
            return ""

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return flux.cancel_argv(job_ids)

    def cancel_ids(self, job_ids: Sequence[str]) -> None:
        """One `flux cancel`; when some had already ended, the others one by one."""
        try:
            self.command(flux.cancel_argv(job_ids), retries=1)
        except SubmitError as exc:
            log.info("flux cancel: %s", exc)
            for jid in job_ids if len(job_ids) > 1 else []:
                try:
                    self.command(flux.cancel_argv([jid]), retries=0)
                except SubmitError:
                    pass

    def dispatcher_launch(self, name: str, log_dir: Path, delay: float = 0.0, *,
                          memory: bool = True) -> TaskLaunch:
        return super().dispatcher_launch(name, log_dir, delay, memory=False)

    def dispatcher_script(self, launch: TaskLaunch, argv: list[str], log_dir: Path,
                          delay: float) -> str:
        """Its flux commands must reach the workflow's instance, not the job's own."""
        return self.job_script(launch, argv, log_dir, parent_uri=True)

    def dispatcher_argv(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                        delay: float) -> list[str]:
        ids = [j for j in (self.canonical(a) for a in after_any) if j]
        deps = flux.dependency_options(after_any=ids) if len(ids) == 1 else []
        begin = max(delay, self.wake) if len(ids) > 1 else delay
        return flux.submit_argv(str(script), dependencies=deps, begin_after=begin)

    def dependency_refused(self, exc: SubmitError, after_any: Sequence[str]) -> bool:
        """The job it would wait on is already purged: nothing to wait for, start now."""
        waited = [j for j in (self.canonical(a) for a in after_any) if j]
        return len(waited) == 1 and "depend" in f"{exc.stderr}{exc}".lower()

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        """The ids as this process's own FLUX_JOB_ID spells them when they are the same job,
        so the chain never mistakes the running dispatcher for another one."""
        me = os.environ.get("FLUX_JOB_ID") or ""
        mine = self.canonical(me)
        return [(me if mine and jid == mine else jid, state)
                for jid, state in super().dispatcher_jobs(name)]
