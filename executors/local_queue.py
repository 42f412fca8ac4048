"""What the local executor holds and how much of the machine it has given out: tasks claimed
but not started yet (a queue of `Queued`), and the cpus and memory of the tasks it runs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from akoflow.port import Resources, SpecError
from akoflow.port.units import format_bytes


@dataclass(frozen=True, kw_only=True)
class Queued:
    """A task waiting for room: submitted by this process, or found prepared and never
    started after a crash (then it gets a fresh bash and the site's sampling interval)."""

    job: str  # its job id: the attempt directory
    attempt_dir: Path
    work_dir: Path
    resources: Resources
    sample_interval: float | None = None  # None (or 0): the site's
    fresh_shell: bool = True  # `bash task.sh`, not a subshell forked from the launcher
    observe: Mapping[str, Any] = field(default_factory=dict)  # TaskLaunch.observe

    @property
    def cpu(self) -> float:
        return float(self.resources.cpu or 1.0)

    @property
    def memory(self) -> int:
        return int(self.resources.memory or 0)


class Capacity:
    """The machine's cpus and memory, and what running (or adopted) tasks hold of them."""

    def __init__(self, cpus: float, memory: int) -> None:
        self.cpus = cpus
        self.memory = memory
        self.cpu_used = 0.0
        self.mem_used = 0
        self._held: dict[Path, tuple[float, int]] = {}  # attempt dir -> (cpu, memory) held
        self._vm_available = 0
        self._vm_at = -1.0

    def check(self, res: Resources, name: str) -> None:
        """A request this machine could never meet is a SpecError (permanent)."""
        cpu = float(res.cpu or 1.0)
        mem = int(res.memory or 0)
        if cpu > self.cpus:
            raise SpecError(f"{name} asks for {cpu:g} cpus; this machine has {self.cpus:g}")
        if mem > self.memory:
            raise SpecError(f"{name} asks for {format_bytes(mem)} of memory; this machine "
                            f"has {format_bytes(self.memory)}")

    def fits(self, q: Queued) -> bool:
        return (self.cpu_used + q.cpu <= self.cpus + 1e-9
                and self.mem_used + q.memory <= self.memory)

    def hold(self, adir: Path, res: Resources) -> None:
        """Count a started (or adopted) task against the machine's capacity."""
        self._held[adir] = (float(res.cpu or 1.0), int(res.memory or 0))
        self.cpu_used += self._held[adir][0]
        self.mem_used += self._held[adir][1]

    def release(self, adir: Path) -> None:
        cpu, mem = self._held.pop(adir, (0.0, 0))
        self.cpu_used -= cpu
        self.mem_used -= mem

    def available_memory(self) -> int:
        """psutil's view of free memory, re-read at most twice a second."""
        now = time.monotonic()
        if now - self._vm_at > 0.5:
            self._vm_available = int(psutil.virtual_memory().available)
            self._vm_at = now
        return self._vm_available


def queued_cpus(queue: Iterable[Queued]) -> float:
    return sum(q.cpu for q in queue)


def queued_memory(queue: Iterable[Queued]) -> int:
    return sum(q.memory for q in queue)
