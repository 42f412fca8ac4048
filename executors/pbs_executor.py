"""PbsExecutor: PBS Pro / Torque's pure pieces (executors/pbs.py) on the BatchExecutor's hooks.

Each attempt is one `qsub` of a script rendered from templates/pbs.sh.j2 that execs
`akoflow worker <attempt dir>`; status is one `qstat` per poll (Pro: JSON, Torque: XML) for
every job, kept to akoflow's by name. The site profile's `flavor:` says which PBS it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from akoflow.port import Node, SubmitError, TaskLaunch

from . import pbs, pbs_nodes
from .base import NAME_PREFIX, Array, BatchExecutor, Transport
from .batch_script import QueueEntry


class PbsExecutor(BatchExecutor):
    kind = "pbs"
    site_keys = frozenset({"flavor"})
    hosts_dispatcher = True

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.flavor = pbs.flavor_of(config)

    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None) -> str:
        return pbs.render_script(job, flavor=self.flavor, worker_argv=worker,
                                 modules=self.modules, env=self.env, log_dir=str(log_dir),
                                 array_size=None)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        dep = pbs.dependency_after_ok(job.after_ok, self.flavor) if job.after_ok else None
        return pbs.submit_argv(str(script), dependency=dep)

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        return [pbs.parse_submit(stdout)]

    def queue(self) -> list[QueueEntry]:
        # Jobs gone from qstat (history off or expired) are GONE, judged by result.json.
        return pbs.parse_queue(self.command(pbs.status_argv(self.flavor)), self.flavor,
                               NAME_PREFIX)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return pbs.cancel_argv(job_ids)

    def dispatcher_argv(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                        delay: float) -> list[str]:
        """PBS cannot wait for the first of several jobs: it waits for the earliest-submitted
        in-flight job (see pbs.dependency_first_to_end)."""
        begin = pbs.begin_at(delay) if delay > 0 else []
        dep = pbs.dependency_first_to_end(after_any) if after_any else None
        return pbs.submit_argv(str(script), dependency=dep, extra=begin)

    def dependency_refused(self, exc: SubmitError, after_any: Sequence[str]) -> bool:
        return True  # the job waited on is already purged: qsub refuses the dependency

    def nodes(self) -> list[Node]:
        """One `pbsnodes` call: every node with its free cpus and memory."""
        text = self.command(pbs_nodes.argv(self.flavor), retries=1)
        try:
            return pbs_nodes.parse(self.flavor, text)
        except (ValueError, KeyError, TypeError, SyntaxError) as exc:  # ParseError: Syntax
            raise SubmitError(f"cannot read pbsnodes output: {exc}", transient=True) from None
