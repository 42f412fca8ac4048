"""One running task: spawn, sample, enforce its time limit, and build its outcome.

Used in-process by the local executor (fast path: no Python process per task) and by
`akoflow worker` inside batch jobs. Either way the task is `bash task.sh` in its own session
(process group), so a cancel reaches every process it started.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import psutil

from akoflow.port import AttemptOutcome, MetricSample, Reason, protocol
from akoflow.worker import fileops, leftovers, snapshot, strace_log, tracing
from akoflow.worker.sampler import TreeSampler

BASH = shutil.which("bash") or "/bin/bash"
# The scheduler's name for this node when there is one (several slurmd may share a host).
HOST = (os.environ.get("SLURMD_NODENAME") or os.environ.get("FLUX_NODE_NAME")
        or socket.gethostname())
KILL_GRACE = 2.0
TRACE_EXIT_WAIT = 2.0  # seconds a reaped task's exit may take to reach its trace log
# Samples come densely while a task is young (0.5 s, 1 s, 2 s, 4 s, ... after its start)
# and back off to `sample_interval`: a short task still gets samples while it runs (its
# peak memory, its real cpu load), and a long one costs no more than before.
EARLY_SAMPLE = 0.5
# Python ignores SIGPIPE (and SIGXFSZ); a child must not inherit that, or `yes | head -1`
# fails under `set -o pipefail` (subprocess resets the same signals).
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


class Starter(Protocol):
    """Starts `bash task.sh` elsewhere (the local launcher), reports pids later, and can
    say how a task it started ended."""

    def send(self, directory: str, fresh: bool = True) -> None: ...

    def status(self, pid: int, patience: float = 2.0) -> int | None: ...


class TaskProcess:
    """A task started by this process (`spawn`) or one left by a dead dispatcher (`adopt`)."""

    def __init__(
        self,
        attempt_dir: Path,
        work_dir: Path,
        *,
        sample_interval: float = 15.0,
        time_limit: float | None = None,
        snapshots: bool = True,
        argv: list[str] | None = None,
        snapshotter: Callable[[Path], snapshot.Snapshot] = snapshot.take,
        env: Mapping[str, str] | None = None,
        starter: Starter | None = None,
        fresh_shell: bool = True,
        cgroup_root: str | None = None,
        roots: fileops.Roots | None = None,
        trace: bool = False,
    ) -> None:
        self.attempt_dir = attempt_dir
        self.work_dir = work_dir
        self.sample_interval = sample_interval
        self.time_limit = time_limit
        self.snapshots = snapshots
        self.snapshotter = snapshotter
        self.env = env  # a plain dict is much cheaper to hand to posix_spawn than os.environ
        self.argv = argv or [BASH, str(attempt_dir / protocol.TASK_SH)]
        self.starter = starter
        self.fresh_shell = fresh_shell  # the starter must exec a new bash (not fork one)
        self.cgroup_root = cgroup_root  # where the attempt's cgroup goes (None: no cgroups)
        self.roots = roots or fileops.Roots(str(work_dir))  # data directories it may touch
        # Its file operations are traced: by a strace of its own (a task this process spawns,
        # log in the attempt directory) or by the launcher's (the owner hands them to
        # `add_files`). Snapshots of the work directory otherwise.
        self.trace = trace
        self.pid = 0
        self.pidfd = -1
        self.child = False
        self.launched = False  # started by `starter`: the pid arrives later (`attach`)
        self.exited = False  # set by the owner when the pidfd of a launched task fires
        self.started_at = 0.0
        self.next_sample = 0.0
        self.metrics: list[MetricSample] = []
        self.before: snapshot.Snapshot = {}
        self.reason: str | None = None
        self.message: str | None = None
        self.parent_rss = 0
        self._sampler: TreeSampler | None = None
        self._term_sent = 0.0

    @property
    def trace_log(self) -> Path:
        return self.attempt_dir / tracing.TRACE_FILE

    def spawn(self) -> None:
        if self.snapshots and not self.trace:
            self.before = self.snapshotter(self.work_dir)
        d = str(self.attempt_dir)
        leftovers.prepare(self.cgroup_root, d)
        if self.starter is not None:
            self.started_at = time.time()
            self.launched = True  # in flight from here: if the send fails, it is sent again
            self.next_sample = self.started_at + self.sample_interval  # first one: attach
            self.starter.send(d, self.fresh_shell)
            return
        # Appending, not truncating: a second start of a running attempt (refused by the
        # pid claim) must leave the first one's output alone.
        append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, f"{d}/{protocol.STDOUT}", append, 0o644),
            (os.POSIX_SPAWN_OPEN, 2, f"{d}/{protocol.STDERR}", append, 0o644),
        ]
        argv = self.argv
        if self.trace:  # this task's own tracer: strace runs bash, and is the group leader
            argv = [*tracing.argv(str(self.trace_log)), *argv]
        self.started_at = time.time()
        # A vfork'd child starts out sharing our memory, and the kernel's peak-RSS figure of
        # the child keeps that: remember ours, so an inherited figure is not reported.
        self.parent_rss = _own_rss()
        self.pid = os.posix_spawn(argv[0], argv, self.env or os.environ,
                                  file_actions=actions, setsid=True, setsigdef=DEFAULT_SIGNALS)
        self.child = True
        self._open_pidfd()
        self._sampler = TreeSampler(self.pid)
        # The first sample is due at once: the next tick, after ended tasks were reaped (a
        # task already over is described by the kernel's accounting at exit instead).
        self.next_sample = self.started_at

    def attach(self, pid: int) -> None:
        """The launcher's answer: the pid of this (launched) task, which may be over already."""
        self.pid = pid
        try:
            self._open_pidfd()
        except ProcessLookupError:
            self.exited = True
        if self.pidfd < 0:
            self.exited = self.exited or not _alive(pid)
        self._sampler = TreeSampler(pid)
        if not self.exited:
            self.sample(tree=False)  # the cheap first sample (one /proc read), at birth
            now = time.time()
            self.next_sample = now + self._delay(now)

    def adopt(self, pid: int, started_at: float) -> bool:
        """Watch a task started by another (dead) dispatcher; False if it is already gone."""
        self.pid = pid
        self.started_at = started_at
        self.child = False
        try:
            self._open_pidfd()
        except ProcessLookupError:
            return False
        self._sampler = TreeSampler(pid)
        self.next_sample = time.time()
        return True

    def _open_pidfd(self) -> None:
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, ProcessLookupError):
                raise
            self.pidfd = -1  # no pidfd support: callers fall back to polling

    def sample(self, *, tree: bool = True) -> None:
        if self._sampler is not None and self.pid > 0:
            s = self._sampler.sample() if tree else self._sampler.first_sample()
            if s is not None:
                self.metrics.append(s)

    def _delay(self, now: float) -> float:
        """Seconds to the next sample: the task's age (so samples double their spacing from
        EARLY_SAMPLE on), at most `sample_interval`."""
        return min(self.sample_interval, max(EARLY_SAMPLE, now - self.started_at))

    def tick(self, now: float) -> float:
        """Sample and enforce the time limit when due; returns the next deadline."""
        if now >= self.next_sample:
            self.sample(tree=bool(self.metrics))
            self.next_sample = now + self._delay(now)
        deadline = self.next_sample
        if self.time_limit is not None:
            limit_at = self.started_at + self.time_limit
            if now >= limit_at and self.reason is None:
                self.reason = Reason.TIMEOUT.value
                self.message = f"time limit of {self.time_limit:g}s exceeded"
                self.terminate()
            elif self._term_sent and now >= self._term_sent + KILL_GRACE:
                self.kill(signal.SIGKILL)
            deadline = min(deadline, limit_at if now < limit_at else now + KILL_GRACE)
        return deadline

    def stop_leftovers(self, *, verify: bool = False) -> None:
        """The task has ended: kill what it left running (its group, its cgroup)."""
        leftovers.stop(self.cgroup_root, self.attempt_dir, self.pid, verify=verify)

    def terminate(self) -> None:
        self._term_sent = time.time()
        self.kill(signal.SIGTERM)

    def kill(self, sig: int) -> None:
        if self.pid <= 0:  # not known yet: killpg(0) would signal our own group
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def reap(self) -> AttemptOutcome | None:
        """The outcome (files not yet added: see `add_files`) if the process has ended, else
        None. Never blocks."""
        if self.launched:
            if not self.exited and self.pidfd < 0 and self.pid > 0:
                self.exited = not _alive(self.pid)  # no pidfd support: look
            return self._launched_outcome() if self.exited else None
        if self.child:
            try:
                pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self._ended_elsewhere()
            if pid == 0:
                return None
            return self._outcome(os.waitstatus_to_exitcode(status), usage)
        if _alive(self.pid):
            return None
        return self._ended_elsewhere()

    def _ended_elsewhere(self) -> AttemptOutcome:
        rc = protocol.read_exit(self.attempt_dir)[0]
        o = self._outcome(rc, None)
        if rc is None:
            o.reason = o.reason or Reason.LOST.value
            o.message = o.message or "task ended without recording its exit code"
        return o

    def _launched_outcome(self) -> AttemptOutcome:
        """A launched task is not our child: its exit code and CPU time come from what its
        EXIT trap appended to the pid file, its memory from the samples. A task whose own
        script replaced that trap (or exec'd) left no code: its parent, the launcher, has it."""
        rc, cpu = protocol.read_exit(self.attempt_dir)
        from_parent = rc is None
        if rc is None:
            rc = self.starter.status(self.pid) if self.starter is not None else None
            if rc == protocol.DUPLICATE_EXIT or (
                    rc is None and protocol.read_int(self.attempt_dir / protocol.PID) != self.pid):
                # Its claim failed: another start owns the attempt.
                return self._outcome(protocol.DUPLICATE_EXIT, None)
        o = self._outcome(rc, None)
        if rc is None:
            o.reason = o.reason or Reason.EXIT.value
            o.message = o.message or "ended without an exit code (killed, or never started)"
        elif from_parent and rc > 128 and o.message is None:
            try:
                o.message = f"killed by {signal.Signals(rc - 128).name}"
            except ValueError:
                pass
        if cpu is not None:
            # The exit sample: cpu % since the last sample, from the task's whole CPU time.
            # No rss: the kernel's peak is not ours to read here (we are not the parent).
            o.cpu_time = cpu
            o.metrics.append(MetricSample(o.finished_at or time.time(),
                                          self._final_percent(cpu, o.finished_at), 0, 0, 0,
                                          0, 0, 0))
        return o

    def _final_percent(self, cpu: float, end: float | None) -> float:
        end = end or time.time()
        if self._sampler is None:
            wall = max(end - self.started_at, 1e-6)
            return 100.0 * cpu / wall
        return self._sampler.final_percent(cpu, end, self.started_at)

    def _outcome(self, rc: int | None, usage: resource.struct_rusage | None) -> AttemptOutcome:
        now = time.time()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        if rc is not None and rc < 0:  # killed by a signal
            self.message = self.message or f"killed by {signal.Signals(-rc).name}"
            rc = 128 - rc
        reason = self.reason
        if reason is None and rc != 0:
            reason = Reason.EXIT.value
        o = AttemptOutcome(
            exit_code=rc, reason=reason, started_at=self.started_at, finished_at=now,
            node=HOST, message=self.message, metrics=self.metrics,
        )
        # Sampled: the tree's largest summed RSS, or one process's kernel high-water mark
        # (VmHWM) read at a sample, whichever is larger.
        sampled = max([m.rss for m in self.metrics]
                      + [self._sampler.peak_hwm if self._sampler else 0])
        o.peak_rss = sampled or None
        if usage is not None:
            ru = usage
            o.cpu_time = ru.ru_utime + ru.ru_stime
            kernel_peak = ru.ru_maxrss * 1024
            if kernel_peak <= 1.05 * self.parent_rss:  # inherited from us (vfork), not its own
                kernel_peak = 0
            o.peak_rss = max(kernel_peak, sampled) or None
            # The exit sample: cpu % since the last sample, and the kernel's peak RSS of the
            # task's tree (0 when it is not the task's own): the exact figure.
            o.metrics.append(MetricSample(now, self._final_percent(o.cpu_time, now),
                                          kernel_peak, 0, ru.ru_inblock * 512,
                                          ru.ru_oublock * 512, 0, 0))
        protocol.attach_streams(self.attempt_dir, o)
        return o

    def add_files(self, o: AttemptOutcome,
                  ops: Sequence[tuple[str, str]] | None = None) -> None:
        """The attempt's files; call only once the process is reaped (and what it left
        stopped), so nothing it did is missed. From its traced operations (`ops`, when a
        shared tracer followed it; its own trace log otherwise), else from the diff of two
        snapshots of the work directory."""
        if ops is None and self.trace:
            state = strace_log.TraceFeed(str(self.trace_log), os.getcwd()).read_all(
                wait=TRACE_EXIT_WAIT)
            ops = state.take(str(self.attempt_dir))
            if state.owners.get(str(self.attempt_dir)) is None:
                ops = None  # the task never claimed its attempt: nothing it did was ours
            try:
                self.trace_log.unlink()
            except OSError:
                pass
        if ops is not None:
            o.files = fileops.summarize(ops, self.roots)
        elif self.snapshots:
            generated, present = snapshot.diff(self.before, self.snapshotter(self.work_dir))
            o.files = generated + present


_RSS_CACHE: list[float] = [0.0, 0.0]  # [rss, measured at]


def _own_rss() -> int:
    """This process's RSS, re-read at most once a second (spawning must stay cheap)."""
    now = time.monotonic()
    if now - _RSS_CACHE[1] > 1.0:
        _RSS_CACHE[0] = float(psutil.Process().memory_info().rss)
        _RSS_CACHE[1] = now
    return int(_RSS_CACHE[0])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def pid_owner_matches(pid: int, attempt_dir: Path) -> bool:
    """True if `pid` is (still) the task of this attempt, guarding against pid reuse.

    `bash task.sh` names the attempt in its command line. A task forked by the launcher
    carries the launcher's command line instead, but its stdout/stderr are the attempt's
    files, and it was born when it wrote its pid file (a reused pid would be younger)."""
    try:
        proc = psutil.Process(pid)
        cmd = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
    d = str(attempt_dir)
    if any(d in part for part in cmd):
        return True
    for fd in (1, 2):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(d + "/"):
                return True
        except OSError:
            pass
    try:
        if protocol.read_exit(attempt_dir)[0] is not None:
            return False  # that task has ended (and the pid file's time is its end)
        claimed = os.stat(attempt_dir / protocol.PID).st_mtime
        forked = any("akoflow-launcher" in part for part in cmd)  # a fork of the launcher
        return forked and abs(proc.create_time() - claimed) < 2.0
    except (OSError, psutil.Error):
        return False
