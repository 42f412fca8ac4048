"""Docker executor: every attempt is one container on a dockerd, driven through the docker SDK.

The container is the durable unit. Its name (`<job name>.<hash of the attempt dir>`) is the
job id, known before submission, and dockerd refuses a second container of that name, so an
attempt can never start twice. Its labels (`akoflow.job`, `.workflow`, `.activity`,
`.attempt`, `.attempt_dir`, ...) describe it fully, so a dispatcher that died leaves nothing
the next one cannot adopt: running containers are watched again, ended ones are collected.

Provenance is the same as for host processes: psutil samples of the container's processes
(seen from the host through the init pid), file snapshots of the mounted work directory
before and after, stdout/stderr from the container's logs, the exit code, the image id.
result.json is written through the worker protocol before a finished container is removed.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from akoflow.port import (
    AttemptOutcome,
    Executor,
    ExecutorError,
    InProcessRunner,
    JobRef,
    JobState,
    JobStatus,
    Node,
    Reason,
    SpecError,
    SubmitError,
    TaskLaunch,
    akoflow_home,
    protocol,
)
from akoflow.worker import snapshot
from akoflow.worker.sampler import TreeSampler

from .docker_boxes import (
    Box,
    binds_of,
    box_from_labels,
    container_name,
    labels_of,
    load_before,
    request_of,
    save_before,
    timestamp,
)


class _Absent(Exception):
    """Stands in for the SDK's exceptions when it is not installed (never raised)."""


try:
    from docker import DockerClient  # type: ignore[import-untyped]
    from docker.errors import DockerException, NotFound  # type: ignore[import-untyped]
    from docker.types import DeviceRequest  # type: ignore[import-untyped]
    from requests.exceptions import RequestException
except ImportError:  # the optional extra is missing: say so when the site is used
    DockerClient = None
    DockerException = NotFound = _Absent
    RequestException = _Absent  # type: ignore[misc,assignment]


log = logging.getLogger(__name__)
ERRORS = (DockerException, RequestException)
DEFAULT_SHELL = ("sh", "-e", "-c")


class DockerExecutor(Executor, InProcessRunner):
    kind = "docker"
    site_keys = frozenset({
        "api_timeout", "cpus", "docker_host", "env", "image", "keep_containers", "memory",
        "mount_path", "network", "shell", "snapshots", "stop_grace", "user",
    })
    bounded = True
    prefetch = 0.0
    requires = (("docker", "docker"),)

    def __init__(self, site: str, config: Mapping[str, Any]) -> None:
        super().__init__(site, config)
        missing = self.missing()
        if missing:
            raise ExecutorError(f"site {site!r}: {missing}")
        self.base_url = config.get("docker_host") or None
        self.default_image = config.get("image") or None
        self.mount_path = str(config.get("mount_path") or "/akoflow/work")
        self.shell = [str(a) for a in config.get("shell") or DEFAULT_SHELL]
        self.network = str(config.get("network") or "none")
        user = config.get("user", "auto")
        self.user = f"{os.getuid()}:{os.getgid()}" if user == "auto" else str(user or "")
        self.sample_interval = float(config.get("sample_interval", 15.0))
        self.snapshots = bool(config.get("snapshots", True))
        self.keep_all = bool(config.get("keep_containers", False))
        self.grace = float(config.get("stop_grace", 2.0))
        self.api_timeout = float(config.get("api_timeout", 60.0))
        self.extra_env = {str(k): str(v) for k, v in (config.get("env") or {}).items()}
        self.home = str(akoflow_home().resolve())
        self.running: dict[str, Box] = {}
        self.ended: dict[str, AttemptOutcome] = {}  # job id -> outcome, until collected
        self.cpu_used = 0.0
        self.mem_used = 0
        self._started: list[str] = []
        self._client: DockerClient | None = None
        self._inventory: tuple[str, float, int] | None = None
        self._images: dict[str, str] = {}  # image reference -> image id
        self._snaps: dict[Path, snapshot.Snapshot] = {}

    # -- the daemon ------------------------------------------------------------------------
    @property
    def api(self) -> Any:
        if self._client is None:
            try:
                if self.base_url:
                    self._client = DockerClient(base_url=self.base_url, version="auto",
                                                timeout=int(self.api_timeout))
                else:
                    self._client = DockerClient.from_env(timeout=int(self.api_timeout))
            except ERRORS as exc:
                where = self.base_url or os.environ.get("DOCKER_HOST") or "the local socket"
                raise ExecutorError(f"cannot reach dockerd at {where}: {exc}") from None
        return self._client.api

    def _host(self) -> tuple[str, float, int]:
        """(name, cpus, memory) from `docker info`, read once; the site may cap them."""
        if self._inventory is None:
            try:
                info = self.api.info()
            except ERRORS as exc:
                raise ExecutorError(f"docker info failed: {exc}") from None
            cpus = float(self.config.get("cpus") or info.get("NCPU") or 1)
            mem = int(self.config.get("memory") or info.get("MemTotal") or 0)
            self._inventory = (str(info.get("Name") or socket.gethostname()), cpus, mem)
        return self._inventory

    def nodes(self) -> list[Node]:
        name, cpus, mem = self._host()
        return [Node(name=name, cpus=cpus, cpus_free=cpus - self.cpu_used, memory=mem,
                     memory_free=mem - self.mem_used,
                     state="mixed" if self.running else "idle", labels={"runtime": "docker"})]

    # -- submission ------------------------------------------------------------------------
    def planned_job_id(self, launch: TaskLaunch) -> str:
        return container_name(launch.job_name, launch.attempt_dir)

    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        try:
            _, cpus, mem = self._host()
        except ExecutorError as exc:
            raise SubmitError(str(exc), transient=True) from None
        for ln in launches:
            cpu, need = request_of(ln.resources)
            if cpu > cpus or need > mem:
                raise SpecError(f"{ln.activity} asks for {cpu:g} cpus and {need} bytes; the "
                                f"Docker host has {cpus:g} cpus and {mem} bytes")
        refused = {ln.job_name: self._image_problem(ln) for ln in launches}
        if all(refused.values()):
            raise SpecError("; ".join(sorted({str(v) for v in refused.values()})))
        self._snaps.clear()  # one before-snapshot per work dir for the whole batch
        ids: list[str] = []
        started = False
        for ln in launches:
            job = self.planned_job_id(ln)
            problem = refused[ln.job_name]
            try:
                if problem:
                    self._refuse(job, ln.attempt_dir, problem)
                else:
                    started = self._start(job, ln) or started
            except SubmitError as exc:
                if not started:  # nothing of this batch runs: the dispatcher retries it all
                    raise
                self._refuse(job, ln.attempt_dir, str(exc), Reason.SUBMIT_ERROR)
            ids.append(job)
        return ids

    def _image_problem(self, ln: TaskLaunch) -> str | None:
        image = ln.image or self.default_image
        if not image:
            return (f"{ln.activity}: no container image (set `image:` on the activity or "
                    f"workflow, or in site profile {self.site!r})")
        if image in self._images:
            return None
        try:
            self._images[image] = str(self.api.inspect_image(image)["Id"])
        except NotFound:
            return (f"image {image!r} is not on the Docker host (akoflow never pulls: "
                    f"`docker pull`, `docker load` or `docker import` it first)")
        except ERRORS as exc:
            raise SubmitError(f"cannot inspect image {image!r}: {exc}", transient=True) from None
        return None

    def _refuse(self, job: str, adir: Path, message: str,
                reason: Reason = Reason.SPEC_ERROR) -> None:
        now = time.time()
        o = AttemptOutcome(exit_code=None, reason=reason.value, started_at=None,
                           finished_at=now, message=message)
        protocol.write_result(adir, o)
        protocol.attach_streams(adir, o)
        self.ended[job] = o

    def _start(self, job: str, ln: TaskLaunch) -> bool:
        """Create and start one container; True once a container exists."""
        if (ln.attempt_dir / protocol.RESULT).exists():
            return False  # already over: a later poll reports it from result.json
        ln.work_dir.mkdir(parents=True, exist_ok=True)
        for src in ln.inputs:  # standalone storage: parents' volumes, copied host side
            if src.is_dir():
                shutil.copytree(src, ln.work_dir, symlinks=True, dirs_exist_ok=True)
        cpu, mem = request_of(ln.resources)
        box = Box(job, ln.attempt_dir, ln.work_dir, cpu, mem, ln.keep_disk or self.keep_all,
                  ln.resources.time_limit, ln.sample_interval or self.sample_interval,
                  time.time(), image_id=self._images.get(ln.image or self.default_image or ""))
        if self.snapshots:
            box.before = self._snapshot(ln.work_dir)
            save_before(ln.attempt_dir, box.before)
        try:
            self.api.create_container(**self._create_args(job, ln, cpu, mem))
        except NotFound as exc:  # the image went away since it was checked
            self._images.clear()
            self._refuse(job, ln.attempt_dir, f"image {ln.image!r} is not on the Docker host:"
                                              f" {exc}")
            return False
        except DockerException as exc:
            if getattr(exc, "status_code", None) != 409:  # 409: the name exists, adopt it
                raise SubmitError(f"docker create {job} failed: {exc}", transient=False
                                  ) from None
        except RequestException as exc:
            raise SubmitError(f"docker create {job} failed: {exc}", transient=True) from None
        try:
            self._run(box)
        except SubmitError:
            self._remove(job, False)  # its attempt is given up: never leave it running
            raise
        return True

    def _create_args(self, job: str, ln: TaskLaunch, cpu: float, mem: int) -> dict[str, Any]:
        mount = ln.mount_path or self.mount_path
        gpus = int(ln.resources.gpus or 0)
        hc = self.api.create_host_config(
            binds=binds_of(ln, mount), network_mode=self.network,
            nano_cpus=int(cpu * 1e9) if cpu else None,
            mem_limit=mem or None, memswap_limit=mem or None,  # equal: no swap to escape to
            device_requests=[DeviceRequest(count=gpus, capabilities=[["gpu"]])] if gpus
            else None,
        )
        env = {**protocol.task_env(ln), **self.extra_env, **ln.env,
               "AKOFLOW_WORKDIR": mount, "AKOFLOW_MOUNT_PATH": mount,
               "AKOFLOW_HOST_WORKDIR": str(ln.work_dir)}
        labels = labels_of(ln, site=self.site, home=self.home, cpu=cpu, mem=mem,
                           keep=ln.keep_disk or self.keep_all,
                           interval=ln.sample_interval or self.sample_interval)
        return dict(image=ln.image or self.default_image, command=[*self.shell, ln.script],
                    name=job, labels=labels, environment=env, working_dir=mount,
                    user=self.user or None, host_config=hc, detach=True)

    def _run(self, box: Box) -> None:
        """Start the container if it never ran, then watch it (and count it as held)."""
        try:
            st = self.api.inspect_container(box.name)
            if st["State"].get("Status") == "created" and not st["State"].get("Error"):
                try:
                    self.api.start(box.name)
                except DockerException as exc:  # e.g. the command is not in the image
                    box.message = f"container did not start: {exc}"
                st = self.api.inspect_container(box.name)
        except ERRORS as exc:
            raise SubmitError(f"docker start {box.name} failed: {exc}", transient=True
                              ) from None
        self._watch(box, st)
        self._started.append(box.name)

    def _watch(self, box: Box, st: Mapping[str, Any]) -> None:
        state = st["State"]
        box.image_id = str(st.get("Image") or box.image_id or "") or None
        box.started_at = timestamp(state.get("StartedAt")) or box.started_at
        box.pid = int(state.get("Pid") or 0) if state.get("Running") else 0
        if box.pid:
            try:
                box.pidfd = os.pidfd_open(box.pid)
            except OSError:
                box.pidfd = -1  # not in our pid namespace, or no pidfd: poll dockerd
            box.sampler = TreeSampler(box.pid)
        box.next_sample = time.time()
        self.running[box.name] = box
        self.cpu_used += box.cpu
        self.mem_used += box.memory
        if box.pid:
            (box.attempt_dir / protocol.PID).write_text(f"{box.pid}\n")

    def _snapshot(self, root: Path) -> snapshot.Snapshot:
        snap = self._snaps.get(root)
        if snap is None:
            snap = self._snaps[root] = snapshot.take(root)
        return snap

    # -- watching --------------------------------------------------------------------------
    def _ended(self, box: Box, now: float) -> bool:
        if now < box.retry_at:
            return False
        if box.pidfd >= 0:
            p = select.poll()
            p.register(box.pidfd, select.POLLIN)
            return bool(p.poll(0))
        if box.pid and psutil.pid_exists(box.pid):
            try:
                return psutil.Process(box.pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True
        try:
            return not self.api.inspect_container(box.name)["State"].get("Running")
        except NotFound:
            return True
        except ERRORS:
            return False

    def _reap_all(self) -> None:
        now = time.time()
        done = [b for b in self.running.values() if self._ended(b, now)]
        if not done:
            return
        self._snaps.clear()  # snapshots after every ended container, shared between them
        for box in done:
            outcome = self._collect(box)
            if outcome is None:
                box.retry_at = time.time() + 1.0  # dockerd did not answer: try again later
                continue
            self._release(box)
            self.ended[box.name] = outcome

    def _release(self, box: Box) -> None:
        self.running.pop(box.name, None)
        self.cpu_used -= box.cpu
        self.mem_used -= box.memory
        if box.pidfd >= 0:
            os.close(box.pidfd)
            box.pidfd = -1

    def _collect(self, box: Box) -> AttemptOutcome | None:
        """Exit code, logs, after-snapshot → result.json; then the container goes."""
        try:
            rc = int(self.api.wait(box.name, timeout=self.api_timeout)["StatusCode"])
            state = self.api.inspect_container(box.name)["State"]
            self._save_logs(box)
        except NotFound:
            return self._lost(box, "the container was removed before its exit was read")
        except ERRORS as exc:
            log.warning("collecting container %s failed (will retry): %s", box.name, exc)
            return None
        if state.get("Error") and not box.message:
            box.message = str(state["Error"])
        reason = box.reason
        if reason is None and rc != 0:
            reason = Reason.EXIT.value
            if state.get("OOMKilled"):
                reason = Reason.OOM.value
                box.message = f"out of memory: the container's limit is {box.memory} bytes"
        o = AttemptOutcome(
            exit_code=rc, reason=reason, started_at=box.started_at,
            finished_at=timestamp(state.get("FinishedAt")) or time.time(), node=self._host()[0],
            peak_rss=max((m.rss for m in box.metrics), default=0) or None,
            image_id=box.image_id, message=box.message, metrics=box.metrics)
        if self.snapshots and box.before is not None:
            generated, present = snapshot.diff(box.before, self._snapshot(box.work_dir))
            o.files = generated + present
        protocol.write_result(box.attempt_dir, o)
        protocol.attach_streams(box.attempt_dir, o)
        self._remove(box.name, box.keep)
        return o

    def _lost(self, box: Box, message: str) -> AttemptOutcome:
        o = AttemptOutcome(exit_code=None, reason=box.reason or Reason.LOST.value,
                           started_at=box.started_at, finished_at=time.time(),
                           image_id=box.image_id, message=message, metrics=box.metrics)
        protocol.attach_streams(box.attempt_dir, o)
        return o

    def _save_logs(self, box: Box) -> None:
        for stream in (protocol.STDOUT, protocol.STDERR):
            out = stream == protocol.STDOUT
            chunks = self.api.logs(box.name, stdout=out, stderr=not out, stream=True)
            with open(box.attempt_dir / stream, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)

    def _remove(self, name: str, keep: bool) -> None:
        if keep:
            return
        try:
            self.api.remove_container(name, force=True)
        except NotFound:
            pass
        except ERRORS as exc:
            log.warning("could not remove container %s: %s", name, exc)

    def _tick(self, box: Box, now: float) -> float:
        """Sample and enforce the time limit when due; returns the next deadline."""
        if now >= box.next_sample and box.sampler is not None:
            s = box.sampler.sample() if box.metrics else box.sampler.first_sample()
            if s is not None:
                box.metrics.append(s)
            box.next_sample = now + box.interval
        deadline = box.next_sample if box.sampler is not None else now + 0.25
        if box.time_limit:
            limit_at = box.started_at + float(box.time_limit)
            if now >= limit_at and box.reason is None:
                box.reason = Reason.TIMEOUT.value
                box.message = f"time limit of {float(box.time_limit):g}s exceeded"
                box.term_sent = now
                self._signal(box.name, "SIGTERM")
            elif box.term_sent and now >= box.term_sent + self.grace:
                self._signal(box.name, "SIGKILL")
            deadline = min(deadline, limit_at if now < limit_at else now + self.grace)
        if box.pidfd < 0:
            deadline = min(deadline, now + 0.25)  # no pidfd to wake us: look again soon
        return deadline

    def _signal(self, name: str, sig: str) -> None:
        try:
            self.api.kill(name, signal=sig)
        except ERRORS:
            pass  # already ended

    def wait(self, timeout: float) -> None:
        """Watch until a container ends (the dispatcher can refill the slot) or timeout."""
        end = time.time() + timeout
        while True:
            self._reap_all()
            if not self.running or self.ended:
                return
            now = time.time()
            if now >= end:
                return
            deadline = end
            for box in list(self.running.values()):
                deadline = min(deadline, self._tick(box, now))
                if box.retry_at > now:  # its pidfd stays readable: wake at the retry time
                    deadline = min(deadline, box.retry_at)
            fds = [b.pidfd for b in self.running.values() if b.pidfd >= 0 and b.retry_at <= now]
            seconds = max(0.0, deadline - time.time())
            if fds:
                poller = select.poll()
                for fd in fds:
                    poller.register(fd, select.POLLIN)
                poller.poll(seconds * 1000)
            else:
                time.sleep(min(seconds, 0.25))

    def poll_changes(self) -> dict[str, JobStatus]:
        self._reap_all()
        started, self._started = self._started, []
        return {job: JobStatus(JobState.RUNNING, node=self._host()[0],
                               started_at=self.running[job].started_at)
                for job in started if job in self.running}

    def collect_reports(self) -> dict[str, AttemptOutcome]:
        out, self.ended = self.ended, {}
        return out

    def busy(self) -> bool:
        return bool(self.running)

    # -- status and crash repair -----------------------------------------------------------
    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        self._reap_all()
        out: dict[str, JobStatus] = {}
        foreign: dict[str, JobRef] = {}
        for ref in jobs:
            job = container_name(ref.job_name, ref.attempt_dir)
            if job in self.running:
                out[ref.job_name] = JobStatus(JobState.RUNNING, node=self._host()[0])
            elif job in self.ended:
                o = self.ended[job]
                out[ref.job_name] = JobStatus(
                    JobState.COMPLETED if o.succeeded else JobState.FAILED,
                    exit_code=o.exit_code)
            else:
                foreign[job] = ref
        if foreign:
            try:
                found = self._list()
            except ERRORS as exc:
                log.warning("listing containers failed: %s", exc)
                found = None
            for job, ref in foreign.items():
                out[ref.job_name] = (JobStatus(JobState.UNKNOWN, message="dockerd unreachable")
                                     if found is None else self._foreign(job, ref, found))
        return out

    def _list(self) -> dict[str, dict[str, Any]]:
        """Every akoflow container of this manifest home, by name: one call."""
        rows = self.api.containers(
            all=True, filters={"label": ["akoflow.job", f"akoflow.home={self.home}"]})
        return {str(r["Names"][0]).lstrip("/"): r for r in rows if r.get("Names")}

    def _foreign(self, job: str, ref: JobRef, found: Mapping[str, dict[str, Any]]
                 ) -> JobStatus:
        """A container this process did not start (its dispatcher died): adopt it."""
        adir = Path(ref.attempt_dir)
        row = found.get(job)
        if row is None:
            if (adir / protocol.RESULT).exists() or (adir / protocol.PID).exists():
                return JobStatus(JobState.GONE, message="container gone")
            return JobStatus(JobState.MISSING, message="no container was created")
        labels = row.get("Labels") or {}
        if (adir / protocol.RESULT).exists():  # collected, only the removal was missed
            self._remove(job, labels.get("akoflow.keep") == "1")
            return JobStatus(JobState.GONE, message="container already collected")
        box = box_from_labels(job, adir, labels, self.sample_interval)
        box.before = load_before(adir) if self.snapshots else None
        try:
            self._run(box)
        except SubmitError as exc:
            return JobStatus(JobState.UNKNOWN, message=str(exc))
        self._reap_all()
        if job in self.running:
            return JobStatus(JobState.RUNNING, node=self._host()[0],
                             started_at=self.running[job].started_at)
        o = self.ended.get(job)
        if o is None:
            return JobStatus(JobState.UNKNOWN, message="container state unreadable")
        return JobStatus(JobState.COMPLETED if o.succeeded else JobState.FAILED,
                         exit_code=o.exit_code)

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        try:
            found = self._list()
        except ERRORS as exc:
            raise ExecutorError(f"listing containers failed: {exc}") from None
        wanted = set(job_names)
        return {str(r["Labels"]["akoflow.job"]): name for name, r in found.items()
                if (r.get("Labels") or {}).get("akoflow.job") in wanted}

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        """SIGTERM every container, SIGKILL what is left after the grace, then remove."""
        names = [container_name(ref.job_name, ref.attempt_dir) for ref in jobs]
        keep: dict[str, bool] = {}
        for name in names:
            box = self.running.get(name)
            if box is not None:
                self._release(box)
            try:
                labels = self.api.inspect_container(name)["Config"].get("Labels") or {}
            except ERRORS:
                continue
            keep[name] = labels.get("akoflow.keep") == "1"
            self._signal(name, "SIGTERM")
        end = time.time() + self.grace
        pending = list(keep)
        while pending and time.time() < end:
            time.sleep(0.1)
            pending = [n for n in pending if self._is_running(n)]
        for name in pending:
            self._signal(name, "SIGKILL")
        for name, kept in keep.items():
            self._remove(name, kept)

    def _is_running(self, name: str) -> bool:
        try:
            return bool(self.api.inspect_container(name)["State"].get("Running"))
        except ERRORS:
            return False

    def close(self) -> None:
        for box in self.running.values():
            if box.pidfd >= 0:
                os.close(box.pidfd)
                box.pidfd = -1
        if self._client is not None:
            self._client.close()
            self._client = None
