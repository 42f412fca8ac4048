"""PbsExecutor: PBS Pro / Torque's pure pieces (executors/pbs.py) run through a BatchExecutor.

Each attempt is one `qsub` of a script rendered from templates/pbs.sh.j2 that execs
`akoflow worker <attempt dir>`; status is one `qstat` per poll (Pro: JSON, Torque: XML) for
every job, kept to akoflow's by name. The site profile's `flavor:` says which PBS it is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.executor import JobRef, JobState, JobStatus, Node, SubmitError, TaskLaunch

from . import pbs, pbs_nodes
from .base import BatchExecutor, Transport

log = logging.getLogger(__name__)
NAME_PREFIX = "akoflow."


class PbsExecutor(BatchExecutor):
    kind = "pbs"
    site_keys = frozenset({"flavor"})
    hosts_dispatcher = True

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.flavor = pbs.flavor_of(config)

    def _submit_one(self, ln: TaskLaunch) -> str:
        job = replace(ln, resources=self.with_defaults(ln.resources))
        script = pbs.render_script(job, flavor=self.flavor, worker_argv=self.worker_argv(ln),
                                   modules=self.modules, env=self.env,
                                   log_dir=str(ln.attempt_dir), array_size=None)
        path = ln.attempt_dir / "job.sh"
        path.write_text(script)
        dep = pbs.dependency_after_ok(ln.after_ok, self.flavor) if ln.after_ok else None
        return pbs.parse_submit(self.command(pbs.submit_argv(str(path), dependency=dep)))

    def _queue(self) -> dict[str, tuple[str, JobStatus]]:
        return pbs.parse_status(self.command(pbs.status_argv(self.flavor)), self.flavor,
                                NAME_PREFIX)

    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        # Gone from qstat (history off or expired): GONE, judged by result.json.
        return self.poll_listing(jobs, self._queue, "qstat")

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        ids = [j.job_id for j in jobs if j.job_id]
        if not ids:
            return
        self.cancel_ids(pbs.cancel_argv(ids))

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        return self.ids_by_name(self._queue(), job_names)

    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """The dispatcher as a small batch job. PBS cannot wait for the first of several jobs:
        it waits for the earliest-submitted in-flight job (see pbs.dependency_first_to_end)."""
        launch = self.dispatcher_launch(name, log_dir)
        script = pbs.render_script(launch, flavor=self.flavor, worker_argv=list(argv),
                                   modules=self.modules, env=self.env, log_dir=str(log_dir),
                                   array_size=None)
        path = log_dir / "dispatcher.sh"
        path.write_text(script)
        begin = pbs.begin_at(delay) if delay > 0 else []
        dep = pbs.dependency_first_to_end(after_any) if after_any else None
        try:
            return pbs.parse_submit(self.command(pbs.submit_argv(str(path), dependency=dep,
                                                                 extra=begin)))
        except SubmitError as exc:
            if dep is None or exc.transient:
                raise
            # The job waited on is already purged: qsub refuses the dependency. Start after
            # the spacing instead; the next cycle sees that job's result.
            log.info("qsub refused %s (%s); queueing the dispatcher without it", dep, exc)
            return pbs.parse_submit(self.command(pbs.submit_argv(str(path), extra=begin)))

    def nodes(self) -> list[Node]:
        """One `pbsnodes` call: every node with its free cpus and memory."""
        text = self.command(pbs_nodes.argv(self.flavor), retries=1)
        try:
            return pbs_nodes.parse(self.flavor, text)
        except (ValueError, KeyError, TypeError, SyntaxError) as exc:  # ParseError: Syntax
            raise SubmitError(f"cannot read pbsnodes output: {exc}", transient=True) from None

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        return [(jid, st.state) for jid, (n, st) in self._queue().items() if n == name]
