"""psutil samples of a task's whole process tree (cpu, memory, io, threads, processes)."""

from __future__ import annotations

import os
import time

import psutil

from akoflow.manifest.records import MetricSample

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class TreeSampler:
    """Keeps psutil.Process objects between calls so cpu_percent measures an interval."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._procs: dict[int, psutil.Process] = {}

    def _proc(self, pid: int) -> psutil.Process:
        p = self._procs.get(pid)
        if p is None:
            p = psutil.Process(pid)
            p.cpu_percent(None)
            self._procs[pid] = p
        return p

    def first_sample(self) -> MetricSample | None:
        """The sample right after start: the root process only, from one /proc read (a full
        psutil sample costs about as much as a short task's whole bookkeeping)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return None
        if fields[0] == b"Z":
            return None
        threads, vsize, rss_pages = int(fields[17]), int(fields[20]), int(fields[21])
        try:
            self._proc(self.pid)  # prime cpu_percent for the samples that follow
        except psutil.Error:  # it ended just now: what was read above still stands
            pass
        return MetricSample(time.time(), 0.0, rss_pages * PAGE_SIZE, vsize, 0, 0, threads, 1)

    def sample(self, *, tree: bool = True) -> MetricSample | None:
        """One sample of the tree (or of the root alone: the cheap first sample, taken
        before the task could start children), or None if the root process is gone."""
        try:
            root = self._proc(self.pid)
            procs = [root, *root.children(recursive=True)] if tree else [root]
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None
        cpu = 0.0
        rss = vms = rd = wr = threads = count = 0
        alive: set[int] = set()
        for p in procs:
            try:
                proc = self._proc(p.pid)
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    mem = proc.memory_info()
                    rss += mem.rss
                    vms += mem.vms
                    threads += proc.num_threads()
                    try:
                        io = proc.io_counters()
                        rd += io.read_bytes
                        wr += io.write_bytes
                    except (psutil.AccessDenied, AttributeError):
                        pass
                count += 1
                alive.add(p.pid)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
        for gone in set(self._procs) - alive:
            del self._procs[gone]
        if not count:
            return None
        return MetricSample(time.time(), cpu, rss, vms, rd, wr, threads, count)
