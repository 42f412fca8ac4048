"""Local executor: tasks as process groups on this machine, bounded by its CPUs and memory.

By default the worker logic runs inside the dispatcher process (`mode: inline`): no Python
interpreter per task, which is what makes thousands of short tasks cheap. `mode: process`
runs `akoflow worker` per task instead, exactly as a batch job would.

A task's state lives in its attempt directory (the pid file task.sh claims, with its exit code
appended at the end), so
a dispatcher that dies mid-run leaves nothing that the next one cannot pick up: tasks it
started are adopted, tasks it only queued are started, none is started twice.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from akoflow.port import (
    AttemptOutcome,
    Executor,
    InProcessRunner,
    JobRef,
    JobState,
    JobStatus,
    Node,
    TaskLaunch,
    akoflow_argv,
    akoflow_home,
    protocol,
)
from akoflow.worker import leftovers, tracing
from akoflow.worker.fileops import Roots
from akoflow.worker.monitor import TaskProcess, pid_owner_matches
from akoflow.worker.snapshot import Snapshot
from akoflow.worker.snapshot import take as take_snapshot

from .launcher import Launcher
from .local_adopt import adopt, ended, recovered, work_dir
from .local_groups import claim_owner, stop_attempts
from .local_lanes import Lanes, lane_cpus
from .local_queue import Capacity, Queued, queued_cpus, queued_memory
from .local_trace import AwaitingLineage, SharedTrace

log = logging.getLogger(__name__)


class LocalExecutor(Executor, InProcessRunner):
    kind = "local"
    site_keys = frozenset({
        "binds", "bind", "container", "container_binary", "cpus", "launcher", "memory", "mode",
        "snapshots",
    })
    bounded = True
    prefetch = 4.0

    def __init__(self, site: str, config: Mapping[str, Any]) -> None:
        super().__init__(site, config)
        self.capacity = Capacity(float(config.get("cpus") or os.cpu_count() or 1),
                                 int(config.get("memory") or psutil.virtual_memory().total))
        # A detached caller (one-shot `akoflow dispatch`) exits before its tasks end, so the
        # worker logic must live in a process of its own next to each task.
        self.mode = "process" if config.get("detached") else str(config.get("mode", "inline"))
        self.sample_interval = float(config.get("sample_interval", 15.0))
        self.snapshots = bool(config.get("snapshots", True))
        self.queue: deque[Queued] = deque()
        self.running: dict[str, TaskProcess] = {}
        self.ended: dict[str, AttemptOutcome] = {}  # job id -> outcome, until collected
        self._started: list[str] = []  # job ids started since the last poll_changes()
        self._snaps: dict[Path, Snapshot] = {}
        self._made: set[Path] = set()  # work directories known to exist
        self._env = dict(os.environ)  # tasks inherit the environment the executor started in
        # Inline tasks are forked by one long-lived bash (see launcher.py) unless the site
        # says `launcher: false` or the kernel has no pidfd (we could not watch them).
        use = self.mode == "inline" and bool(config.get("launcher", True)) and Launcher.supported()
        # Each attempt in a cgroup of its own where we may make one (`cgroups: false` opts
        # out); its process group otherwise. Either way it ends with the task.
        self.cgroup = leftovers.tasks_env(self._env, bool(config.get("cgroups", True)))
        # File lineage: each task's syscalls traced (worker/tracing.py) where strace works,
        # one tracer for all the launcher's tasks; snapshots of the work directory where not.
        # In `mode: process` each `akoflow worker` traces its own task.
        self.trace = self.mode == "inline" and tracing.available(config.get("trace"))
        self.shared: SharedTrace | None = None
        trace_dir = None
        if self.trace and use:
            self.shared = SharedTrace(akoflow_home() / "traces")
            trace_dir = str(self.shared.dir)
        # With tracing, a launcher per CPU, each with its tasks and tracer on that CPU
        # (local_lanes.py; `bind: false` turns it off).
        lanes = lane_cpus(config.get("bind", True), self.shared is not None,
                          self.capacity.cpus)
        self.lanes: Lanes | None = Lanes(self._env, trace_dir, lanes) if use else None
        self._unheard: dict[str, TaskProcess] = {}  # launched, pid not reported yet
        self._lineage = AwaitingLineage()  # ended, their exit not yet in the trace log

    def task_wrapper(self, launch: TaskLaunch) -> list[str]:
        """In Singularity/Apptainer when the profile says `container: singularity` (or
        apptainer) and the activity has an image (only then is spython imported)."""
        if not (launch.image and self.config.get("container")):
            return []
        from . import singularity

        if singularity.is_container_runtime(self.config):
            return singularity.wrapper_argv(self.config, launch)
        return []

    # job ids are the attempt directories: known before submission, found again after a crash
    def planned_job_id(self, launch: TaskLaunch) -> str:
        return str(launch.attempt_dir)

    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        ids = []
        for ln in launches:
            self.capacity.check(ln.resources, ln.activity)
            job = str(ln.attempt_dir)
            self.queue.append(Queued(
                job=job, attempt_dir=ln.attempt_dir, work_dir=ln.work_dir,
                resources=ln.resources, sample_interval=ln.sample_interval,
                fresh_shell=protocol.needs_fresh_shell(ln.script), observe=ln.observe))
            ids.append(job)
        self._start_queued()
        return ids

    def _start_queued(self) -> None:
        if self.lanes is None:
            self._start_what_fits()
        else:  # what this wake-up starts goes to each launcher in one write
            try:
                with self.lanes.batched():
                    self._start_what_fits()
            except BrokenPipeError:  # it died: a new one starts what it never confirmed
                self._hear()
        if self._lineage and self.shared is not None:  # outcomes whose trace is complete
            logs = self.lanes.logs if self.lanes is not None else None
            self.ended.update(self._lineage.collect(self.shared, logs))

    def _start_what_fits(self) -> None:
        while self.queue:
            if self.running and not self.capacity.fits(self.queue[0]):
                return
            self._spawn(self.queue.popleft())

    def _spawn(self, q: Queued) -> None:
        job, adir, wdir = q.job, q.attempt_dir, q.work_dir
        argv = None
        if self.mode == "process":
            argv = [*akoflow_argv(), "worker", str(adir)]
        interval = float(q.sample_interval or self.sample_interval)
        starter = None
        if self.lanes is not None and argv is None and Launcher.usable(job):
            starter = self.lanes.pick(q.resources.cpu, self.running.values())
        traced = self.trace and tracing.wanted(q.observe.get("trace"))
        task = TaskProcess(adir, wdir, sample_interval=interval,
                           time_limit=q.resources.time_limit,
                           snapshots=self.snapshots and not traced,
                           argv=argv, snapshotter=self._snapshot, env=self._env,
                           starter=starter, fresh_shell=q.fresh_shell,
                           cgroup_root=self.cgroup,
                           roots=Roots.of(wdir, q.observe),
                           trace=traced and starter is None and argv is None)
        if wdir not in self._made:
            wdir.mkdir(parents=True, exist_ok=True)
            self._made.add(wdir)
        try:
            task.spawn()
        except BrokenPipeError:  # the launcher died under us: a new one starts it (_hear)
            pass
        if task.launched:
            self._unheard[job] = task
            if starter is not None and starter.lost:
                self._hear()
        self.capacity.hold(adir, q.resources)
        self.running[job] = task
        self._started.append(job)

    def _snapshot(self, root: Path) -> Snapshot:
        """One snapshot per work directory per wake-up, shared by the tasks that end and
        start in it (they would all see the same directory)."""
        snap = self._snaps.get(root)
        if snap is None:
            snap = take_snapshot(root)
            self._snaps[root] = snap
        return snap

    def _hear(self) -> None:
        """Attach the pids the launchers reported; if one died, start again what it never
        confirmed (task.sh's claim makes a second start of a started task harmless)."""
        if self.lanes is None:
            return
        if self._unheard or self.lanes.listening():
            for pid, job in self.lanes.receive():
                task = self._unheard.pop(job, None)
                if task is not None:
                    task.attach(pid)
        self.lanes.resend(list(self._unheard.values()))

    def _mark_exited(self) -> None:
        """One poll over the pidfds of launched tasks: which of them have ended."""
        watched = {t.pidfd: t for t in self.running.values()
                   if t.launched and t.pidfd >= 0 and not t.exited}
        if not watched:
            return
        poller = select.poll()
        for fd in watched:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(0):
            watched[fd].exited = True

    def _reap_all(self) -> None:
        """Reap every ended task first, then snapshot once for all of them: a snapshot
        taken before a task's exit could miss its last files."""
        self._hear()
        self._mark_exited()
        reaped = []
        for job, task in list(self.running.items()):
            outcome = task.reap()
            if outcome is not None:
                task.stop_leftovers()  # before the end is reported: a retry may follow
                reaped.append((job, task, outcome))
        if not reaped:
            return
        self._snaps.clear()
        for job, task, outcome in reaped:
            self._settle(job, task, outcome)

    def _settle(self, job: str, task: TaskProcess, outcome: AttemptOutcome) -> None:
        del self.running[job]
        self._unheard.pop(job, None)
        self.capacity.release(task.attempt_dir)
        if (task.child or task.launched) and outcome.exit_code == protocol.DUPLICATE_EXIT:
            owner = claim_owner(task.attempt_dir)
            if owner and owner != task.pid:  # another start owns the attempt: watch that one
                if pid_owner_matches(owner, task.attempt_dir):
                    self._adopt(job, task.attempt_dir, task.work_dir, owner)
                return  # (or it has ended: poll() reads its exit code from the pid file)
        if self.mode == "process":
            return  # `akoflow worker` wrote result.json itself
        if self.shared is not None and not task.trace and (task.launched or not task.child):
            # Started by a launcher (ours, or a dead dispatcher's): its record is complete
            # once the tracer has logged its exit, a moment after we learn of it. Its slot
            # is free already; the outcome waits for its lineage (`_start_queued`).
            self._lineage.add(job, task, outcome)
            return
        task.add_files(outcome)
        # The report is ingested from memory within milliseconds; the exit code task.sh
        # appended to the pid file is the durable record should this process die first.
        self.ended[job] = outcome

    def _adopt(self, job: str, adir: Path, wdir: Path, pid: int) -> bool:
        found = adopt(adir, wdir, pid, sample_interval=self.sample_interval, cgroup=self.cgroup)
        if found is None:
            return False
        self.capacity.hold(adir, found[1])
        self.running[job] = found[0]
        return True

    def wait(self, timeout: float) -> None:
        """Run queued work as slots free up, until the dispatcher is needed: the queue runs
        low (it must claim more), nothing runs any more, or `timeout` passes.

        Keeping a few tasks queued here lets one dispatch cycle (one manifest commit)
        settle several completions instead of one.
        """
        end = time.time() + timeout
        while True:
            self._snaps.clear()
            self._reap_all()
            self._start_queued()
            if (not self.running and not self._lineage) or (
                    self.ended and queued_cpus(self.queue) < self.capacity.cpus):
                return
            now = time.time()
            if now >= end:
                return
            deadline = end if not self._lineage else min(end, now + 0.002)
            for task in list(self.running.values()):
                deadline = min(deadline, task.tick(now))
            self._sleep_until_exit(max(0.0, deadline - time.time()))

    def _sleep_until_exit(self, seconds: float) -> None:
        """Sleep until a task ends, the launcher reports a pid, or `seconds` pass."""
        fds = [t.pidfd for t in self.running.values() if t.pidfd >= 0]
        watched = len(fds) + len(self._unheard)
        if self.lanes is not None and self._unheard:  # a pid heard, or a launcher's death
            fds.extend(self.lanes.fds())
        if fds and watched == len(self.running):
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            poller.poll(seconds * 1000)
        else:
            time.sleep(min(seconds, 0.01))

    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        self._snaps.clear()
        self._reap_all()
        self._start_queued()
        queued = {q.job for q in self.queue}
        out: dict[str, JobStatus] = {}
        for ref in jobs:
            job = ref.job_id or ref.attempt_dir
            if job in self.running or job in self._lineage:  # (its lineage being read)
                out[ref.job_name] = JobStatus(JobState.RUNNING, node=socket.gethostname())
            elif job in queued:
                out[ref.job_name] = JobStatus(JobState.PENDING)
            elif job in self.ended:
                o = self.ended[job]
                ok = o.exit_code == 0 and o.reason is None
                out[ref.job_name] = JobStatus(
                    JobState.COMPLETED if ok else JobState.FAILED, exit_code=o.exit_code)
            else:
                out[ref.job_name] = self._foreign(job, Path(ref.attempt_dir))
        return out

    def poll_changes(self) -> dict[str, JobStatus]:
        self._snaps.clear()
        self._reap_all()
        self._start_queued()
        started, self._started = self._started, []
        host = socket.gethostname()
        return {
            job: JobStatus(JobState.RUNNING, node=host, started_at=self.running[job].started_at)
            for job in started if job in self.running
        }

    def _foreign(self, job: str, adir: Path) -> JobStatus:
        """A job this process did not start: look at what its files say."""
        rc = protocol.read_exit(adir)[0]
        pid = protocol.read_int(adir / protocol.PID)
        if pid is not None and pid_owner_matches(pid, adir) and \
                self._adopt(job, adir, work_dir(adir), pid):
            return JobStatus(JobState.RUNNING)
        status = ended(adir, rc, pid, self.cgroup)
        if status is not None:
            return status
        self.queue.append(recovered(job, adir))  # queued by a dead dispatcher: start it now
        self._start_queued()
        return JobStatus(JobState.RUNNING if job in self.running else JobState.PENDING)

    def collect_reports(self) -> dict[str, AttemptOutcome]:
        out, self.ended = self.ended, {}
        return out

    def _await_pids(self, jobs: set[str], patience: float = 2.0) -> None:
        """Wait (briefly) until the launcher has reported the pids of these jobs."""
        end = time.time() + patience
        while jobs & set(self._unheard) and time.time() < end and self.lanes is not None:
            self._hear()
            if jobs & set(self._unheard) and self.lanes.listening():
                select.select(self.lanes.answers(), [], [], 0.05)

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        targets = {ref.job_id or ref.attempt_dir for ref in jobs}
        self.queue = deque(q for q in self.queue if q.job not in targets)
        self._await_pids(targets)
        stop_attempts(jobs, targets, self.running, self._unheard, self.cgroup)
        for job in targets:
            self._unheard.pop(job, None)
            task = self.running.pop(job, None)
            if task is not None:
                self.capacity.release(task.attempt_dir)
                if task.child:
                    try:
                        os.waitpid(task.pid, os.WNOHANG)
                    except ChildProcessError:
                        pass

    def nodes(self) -> list[Node]:
        cap = self.capacity
        return [Node(
            name=socket.gethostname(), cpus=cap.cpus,
            cpus_free=cap.cpus - cap.cpu_used - queued_cpus(self.queue), memory=cap.memory,
            memory_free=min(cap.available_memory(), cap.memory - cap.mem_used)
            - queued_memory(self.queue),
            state="mixed" if self.running else "idle",
        )]

    def busy(self) -> bool:
        return bool(self.running or self.queue or self._lineage)

    def close(self) -> None:
        """Let the launcher go (it exits at end of input); running tasks keep running, and
        their tracer's log stays for whoever adopts them."""
        if self.lanes is not None:
            self.lanes.close()
            if self.shared is not None and not (self.running or self.queue or self._unheard):
                self.shared.forget(self.lanes.logs)
