"""psutil samples of a task's whole process tree (cpu, memory, io, threads, processes).

The cpu % of a sample is the CPU time the tree used since the previous sample over the wall
time between the two (the first sample: since the root process started), not psutil's
`cpu_percent()`, whose first reading of every process is 0.0. The tree's CPU time counts the
children that have ended too: the kernel adds them to their parent's `cutime`/`cstime` when
it reaps them, so a busy child that lived between two samples is not lost.

Each sample also reads every process's `VmHWM`, the kernel's peak RSS of that process so far:
a peak between two samples is seen as long as its process is alive at one of them.
"""

from __future__ import annotations

import os
import time

import psutil

from akoflow.port import MetricSample

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIN_STRETCH = 0.1  # seconds: below this, tick-counted CPU time says nothing about a load
_BOOT: list[float] = []  # the kernel's boot time, read once (start times count from it)


def _boot_time() -> float:
    if not _BOOT:
        _BOOT.append(psutil.boot_time())
    return _BOOT[0]


def _hwm(pid: int) -> int:
    """VmHWM of a process in bytes (0 when unreadable: gone, or not Linux)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeSampler:
    """Keeps psutil.Process objects and the tree's CPU total between calls."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._procs: dict[int, psutil.Process] = {}
        self._last: tuple[float, float] | None = None  # (time, tree cpu seconds) last sample
        self.peak_hwm = 0  # the largest VmHWM of any process of the tree seen at a sample

    def _proc(self, pid: int) -> psutil.Process:
        p = self._procs.get(pid)
        if p is None:
            p = psutil.Process(pid)
            self._procs[pid] = p
        return p

    def _since(self, now: float, cpu: float, born: float) -> float:
        """cpu % since the previous sample (or since `born`), and remember this one. The
        kernel counts CPU time in clock ticks (10 ms): a process younger than MIN_STRETCH
        has no meaningful figure yet, so it reads 0 and the next stretch starts at birth."""
        since, before = self._last if self._last is not None else (born, 0.0)
        elapsed = now - since
        if self._last is None and elapsed < MIN_STRETCH:
            return 0.0
        self._last = (now, cpu)
        return 100.0 * max(0.0, cpu - before) / elapsed if elapsed > 0 else 0.0

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
        cpu = sum(int(f) for f in fields[11:15]) / CLOCK_TICKS  # utime stime cutime cstime
        born = _boot_time() + int(fields[19]) / CLOCK_TICKS
        threads, vsize, rss_pages = int(fields[17]), int(fields[20]), int(fields[21])
        return MetricSample(now, self._since(now, cpu, born), rss_pages * PAGE_SIZE, vsize,
                            0, 0, threads, 1)

    def sample(self, *, tree: bool = True) -> MetricSample | None:
        """One sample of the tree (or of the root alone: the cheap first sample, taken
        before the task could start children), or None if the root process is gone."""
        try:
            root = self._proc(self.pid)
            procs = [root, *root.children(recursive=True)] if tree else [root]
            born = root.create_time()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None
        cpu = 0.0
        rss = vms = rd = wr = threads = count = 0
        alive: set[int] = set()
        for p in procs:
            try:
                proc = self._proc(p.pid)
                with proc.oneshot():
                    t = proc.cpu_times()
                    mem = proc.memory_info()
                    threads += proc.num_threads()
                    try:
                        io = proc.io_counters()
                        rd += io.read_bytes
                        wr += io.write_bytes
                    except (psutil.AccessDenied, AttributeError):
                        pass
                cpu += t.user + t.system + t.children_user + t.children_system
                rss += mem.rss
                vms += mem.vms
                self.peak_hwm = max(self.peak_hwm, _hwm(p.pid))
                count += 1
                alive.add(p.pid)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
        for gone in set(self._procs) - alive:
            del self._procs[gone]
        if not count:
            return None
        now = time.time()
        return MetricSample(now, self._since(now, cpu, born), rss, vms, rd, wr, threads, count)

    def final_percent(self, cpu_total: float, end: float, started: float) -> float:
        """cpu % of the last stretch, from the sample before it (or `started`) to `end`,
        given the tree's whole CPU time at exit (the kernel's rusage, or bash `times`: exact
        to the millisecond, so even a short last stretch has its figure)."""
        since, before = self._last if self._last is not None else (started, 0.0)
        self._last = (end, cpu_total)
        elapsed = end - since
        return 100.0 * max(0.0, cpu_total - before) / elapsed if elapsed > 0 else 0.0
