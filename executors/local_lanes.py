"""The launchers of one local executor: with tracing, one per CPU, each held to its CPU
together with its tracer and the tasks it starts.

Why: a traced task stops at every file syscall until its tracer has looked at it, so each
operation is two round trips between task and tracer. When they run on different CPUs,
each round trip wakes the other CPU; on the virtual machines most of us (and many cloud
clusters) run on, waking an idle vCPU costs tens of microseconds. Measured here
(`bench_observe.py`): 129 µs per traced `open` with tracer and task free to move, 16 µs
with both on one CPU; 620 `/bin/true` two at a time took 0.26 s untraced, 0.73 s under one
shared tracer and 0.32 s under two tracers each held to one CPU with its tasks. One tracer
per CPU also spreads the tracing of a wide node over its cores instead of one process.

So a task asking for at most one cpu runs on the lane with the least work, bound to that
CPU as Slurm's task/affinity binds a one-cpu job; a task asking for more runs on a lane of
its own that is not bound (started only if one comes). `bind: false` in the site profile,
or tracing off, leaves a single unbound launcher, as before.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

from akoflow.worker.monitor import TaskProcess

from .launcher import Launcher


def lane_cpus(bind: object, tracing: bool, cpus: float) -> list[int]:
    """The CPUs to give a lane each: none unless tracing and binding are on and there is
    more than one CPU to choose from; at most as many as the site's `cpus` (rounded up)."""
    if not tracing or str(bind).lower() in ("0", "false", "no", "off"):
        return []
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) < 2:
        return []
    return mine[:max(1, min(len(mine), math.ceil(cpus)))]


class Lanes:
    def __init__(self, env: dict[str, str], trace_dir: str | None, cpus: list[int]) -> None:
        self.bound = [Launcher(env, trace_dir, frozenset({c})) for c in cpus]
        self.wide = Launcher(env, trace_dir)  # tasks of more than one cpu (all, unbound)

    @property
    def launchers(self) -> list[Launcher]:
        return [*self.bound, self.wide]

    @property
    def logs(self) -> list[str]:
        """Every tracer log of every launcher (a restarted launcher adds one)."""
        return [log for la in self.launchers for log in la.logs]

    def pick(self, cpu: float, running: Iterable[TaskProcess]) -> Launcher:
        """The launcher for a task asking for `cpu`: the bound one with the least running
        work (the first on a tie), or the unbound one."""
        if cpu > 1 or not self.bound:
            return self.wide
        load = {id(la): 0.0 for la in self.bound}
        for task in running:
            if not task.exited and id(task.starter) in load:
                load[id(task.starter)] += 1
        return min(self.bound, key=lambda la: load[id(la)])

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Each launcher's requests of this wake-up in one write."""
        with ExitStack() as stack:
            for la in self.launchers:
                stack.enter_context(la.batched())
            yield

    def resend(self, unheard: list[TaskProcess]) -> None:
        """Send again, to each launcher that died, what it never confirmed it started
        (task.sh's claim makes a second start of a started task harmless). One that keeps
        dying: its tasks wait for the next cycle."""
        for la in self.launchers:
            for _ in range(3):
                if not la.lost:
                    break
                la.lost = False
                try:
                    with la.batched():
                        for task in unheard:
                            if task.starter is la:
                                la.send(str(task.attempt_dir), task.fresh_shell)
                except BrokenPipeError:
                    continue

    def receive(self) -> list[tuple[int, str]]:
        return [pair for la in self.launchers if la.fd >= 0 for pair in la.receive()]

    def listening(self) -> bool:
        return any(la.fd >= 0 for la in self.launchers)

    def fds(self) -> list[int]:
        """What wakes a waiter: a launcher's answers, or its death."""
        return [fd for la in self.launchers for fd in (la.fd, la.pidfd) if fd >= 0]

    def answers(self) -> list[int]:
        return [la.fd for la in self.launchers if la.fd >= 0]

    def close(self) -> None:
        for la in self.launchers:
            la.close()
