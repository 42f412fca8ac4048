"""A site profile's `packing:` block, read once, and what it says an allocation can hold.

    packing:
      cpus: 8              # per node of an allocation (the agent's slots)
      nodes: 1             # nodes per allocation (more than one: Slurm only, one agent each)
      memory: 16Gi         # per node; unset: what the scheduler gives (Slurm exports it)
      time: 1h             # walltime of each allocation
      max_allocations: 4   # allocations of one workflow at once, the dispatcher's included
      idle_timeout: 60s    # an allocation with nothing to run this long ends
      status_interval: 30  # at most one queue listing per workflow this often (seconds)
      grow_after: 5s       # work waiting this long with every pilot full asks for one more
      max_submit_jobs: 100 # what the user may queue (MaxSubmitJobs) where the cluster
      max_jobs: 50         #   cannot say (no slurmdbd); the smaller of both applies
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from akoflow.port import ExecutorError, Resources
from akoflow.port.units import UnitError, parse_cpu, parse_duration, parse_memory

DEFAULT_TIME = 3600.0


@dataclass(frozen=True)
class Packing:
    cpus: float
    nodes: int
    memory: int | None
    time: float
    max_allocations: int
    idle_timeout: float
    status_interval: float
    grow_after: float
    # Work queued in a pilot beyond what runs, as a share of its cpus (the local executor's
    # own prefetch): a freed slot is refilled without waiting for the dispatcher.
    prefetch: float = 4.0

    @classmethod
    def of(cls, block: Mapping[str, Any], site: str) -> Packing:
        try:
            nodes = int(block.get("nodes") or 1)
            out = cls(
                cpus=parse_cpu(block.get("cpus") or 1),
                nodes=nodes,
                memory=parse_memory(block["memory"]) if block.get("memory") else None,
                time=parse_duration(block.get("time") or DEFAULT_TIME),
                max_allocations=int(block.get("max_allocations") or 1),
                idle_timeout=parse_duration(block.get("idle_timeout") or 60),
                status_interval=parse_duration(block.get("status_interval") or 30),
                grow_after=parse_duration(block.get("grow_after") or 5))
        except (UnitError, ValueError, TypeError) as exc:
            raise ExecutorError(f"site {site}: packing: {exc}") from None
        if nodes < 1 or out.max_allocations < 1:
            raise ExecutorError(f"site {site}: packing: nodes and max_allocations must be "
                                "at least 1")
        return out

    @property
    def margin(self) -> float:
        """Seconds before its end when an allocation stops starting work and drains."""
        return min(120.0, max(5.0, 0.1 * self.time))

    def holds(self, resources: Resources, defaults: Mapping[str, str]) -> bool:
        """Whether a pilot can run an activity asking for `resources`; the others go out as
        ordinary jobs (gpus, more cpus or memory than a node of the allocation, a longer
        `timeLimit` than its walltime, node labels, scheduler options of their own)."""
        if resources.gpus > 0 or resources.node_selector:
            return False
        if resources.cpu > self.cpus + 1e-9:
            return False
        if self.memory is not None and (resources.memory or 0) > self.memory:
            return False
        limit = resources.time_limit
        if limit and limit > self.time - self.margin:
            return False
        return all(defaults.get(str(k)) == str(v) for k, v in resources.extra.items())

    def allocation(self, kind: str, dispatcher: Mapping[str, Any]) -> dict[str, Any]:
        """The `dispatcher:` block that makes a batch adapter's dispatcher job an allocation
        of this size (the chained dispatcher becomes a pilot itself; pilots of their own
        are queued the same way)."""
        extra = {str(k): str(v) for k, v in (dispatcher.get("extra") or {}).items()}
        if self.nodes > 1:
            if kind != "slurm":
                raise ExecutorError(f"packing.nodes > 1 needs Slurm (srun starts an agent on "
                                    f"each node); the {kind} adapter runs one-node pilots")
            extra.update({"slurm.nodes": str(self.nodes), "slurm.ntasks-per-node": "1"})
        out: dict[str, Any] = {"cpu": self.cpus, "time_limit": math.ceil(self.time),
                               "extra": extra}
        if self.memory is not None:
            out["memory"] = self.memory
        return out
