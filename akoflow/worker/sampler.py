"""psutil samples of a task's whole process tree (cpu, memory, io, threads, processes)."""

from __future__ import annotations

import os
import time

import psutil

from akoflow.manifest.records import MetricSample

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class TreeSampler:
    """Keeps psutil.Process objects between calls so cpu_percent measures an interval."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._procs: dict[int, psutil.Process] = {}
        self._first: tuple[float, float] | None = None  # (time, root cpu seconds) at birth

    def _proc(self, pid: int) -> psutil.Process:
        p = self._procs.get(pid)
        if p is None:
            p = psutil.Process(pid)
            p.cpu_percent(None)
            self._procs[pid] = p
        return p

    def first_sample(self) -> MetricSample | None:
        """The sample right after start: the root process only, from one /proc read (no
        psutil object yet: thousands of short tasks end before a second sample)."""
        try:
            fd = os.open(f"/proc/{self.pid}/stat", os.O_RDONLY)
        except OSError:
            return None
        try:
            fields = os.read(fd, 4096).rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return None
        finally:
            os.close(fd)
        if fields[0] == b"Z":
            return None
        now = time.time()
        self._first = (now, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
        threads, vsize, rss_pages = int(fields[17]), int(fields[20]), int(fields[21])
        return MetricSample(now, 0.0, rss_pages * PAGE_SIZE, vsize, 0, 0, threads, 1)

    def _root_cpu(self, root: psutil.Process) -> float | None:
        """The root's cpu % since the first sample, on the first call after it: the call
        that creates the root's psutil object (whose own cpu_percent starts at 0 there)."""
        if self._first is None:
            return None
        began, cpu0 = self._first
        self._first = None
        t = root.cpu_times()
        elapsed = time.time() - began
        return 100.0 * max(0.0, t.user + t.system - cpu0) / elapsed if elapsed > 0 else 0.0

    def sample(self, *, tree: bool = True) -> MetricSample | None:
        """One sample of the tree (or of the root alone: the cheap first sample, taken
        before the task could start children), or None if the root process is gone."""
        try:
            root = self._proc(self.pid)
            root_cpu = self._root_cpu(root)
            procs = [root, *root.children(recursive=True)] if tree else [root]
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None
        cpu = root_cpu or 0.0
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
