"""The executor core: what every adapter implements, and what it exchanges with the core.

The core never imports an adapter by module name: adapters register in the entry-point group
`akoflow.executors` (ours and third parties' alike) and are found with `executor_class()`.
What only some executors can do (run tasks in this process, run the dispatcher as a job)
is a capability of its own (`akoflow/port/capabilities.py`), not a default here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from akoflow.port import plugins
from akoflow.port.resources import Resources

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "akoflow.executors"


# JobStatus.message of a job held on a dependency that can never be met (Slurm's reason
# text; other adapters report the same words for their equivalent).
NEVER_SATISFIED = "DependencyNeverSatisfied"
# JobStatus.message of a task that lost its allocation (a pilot that ended, was killed or
# preempted under it; dispatch/packing.py): PREEMPTED, it runs again as a new attempt
# without using a retry; CANCELLED, it never started and is withdrawn.
ALLOCATION_ENDED = "its allocation ended first"


class JobState(str, Enum):
    """A scheduler's view of a job, mapped from its native codes by each adapter."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OOM = "OOM"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    GONE = "GONE"  # the scheduler no longer knows the job: judge it by its result file
    MISSING = "MISSING"  # no trace at all: the submission never reached the executor
    UNKNOWN = "UNKNOWN"  # the query failed or the code is unknown: never treat as failure


ENDED_STATES = frozenset({
    JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.OOM,
    JobState.NODE_FAIL, JobState.PREEMPTED,
})


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    exit_code: int | None = None
    node: str | None = None
    started_at: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class JobRef:
    """What the dispatcher knows of a submitted job when it asks for its status."""

    job_id: str | None
    job_name: str
    attempt_dir: str
    submitted_at: float


@dataclass
class TaskLaunch:
    """Everything an executor needs to start one attempt of one activity."""

    workflow_id: int
    workflow: str
    activity_id: int
    activity: str
    attempt: int
    job_name: str
    attempt_dir: Path
    work_dir: Path
    run_dir: Path
    script: str  # the user's `run` text, executed by bash
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    image: str | None = None
    node: str | None = None  # placement chosen by the scheduling policy
    after_ok: list[str] = field(default_factory=list)  # job ids this one must wait for
    sample_interval: float = 15.0
    volumes: list[tuple[str, str]] = field(default_factory=list)  # (host, container)
    mount_path: str | None = None  # the work directory's path inside a container
    namespace: str = "akoflow"  # Kubernetes namespace from the spec
    storage: dict[str, Any] = field(default_factory=dict)  # storagePolicy: type, class, size
    keep_disk: bool = False
    parents: list[str] = field(default_factory=list)  # parent activities (by name)
    # `standalone` storage: the parents' work directories, copied in before the command runs.
    inputs: list[Path] = field(default_factory=list)
    # argv that runs the user's command inside a container (`apptainer exec ... IMAGE`);
    # empty = run it directly. Set from `Executor.task_wrapper` before task.sh is written.
    wrapper: list[str] = field(default_factory=list)
    # How the task's file operations are observed (port/protocol.observation): the
    # site's `trace:` setting, its data directories and container mounts.
    observe: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Node:
    """One schedulable node as an executor (or a site profile) describes it."""

    name: str
    cpus: float
    cpus_free: float
    memory: int
    memory_free: int
    features: tuple[str, ...] = ()
    partitions: tuple[str, ...] = ()
    state: str = "idle"
    speed: float = 1.0
    cost_per_hour: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


class ExecutorError(Exception):
    """Base of errors an adapter raises."""


class SpecError(ExecutorError):
    """The launch can never be accepted (bad resource key, impossible request): permanent."""


class SubmitError(ExecutorError):
    """The scheduler refused or could not be reached; `transient` ones are retried."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        argv: Sequence[str] = (),
        exit_code: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr


class Executor(ABC):
    """An adapter to one site's way of running tasks.

    Contract the dispatcher relies on:
    - `submit` is called only after the intent is committed; it returns one job id per launch.
    - `poll` makes at most one batched query to the scheduler; a failed query returns
      UNKNOWN for every job, never FAILED.
    - `lookup` finds jobs by name, so a crash between intent and submit is repaired without
      submitting twice.
    """

    kind: str = "abstract"
    # The dispatcher sees a task's work directory at the same path (local disks, cluster
    # file systems, a Docker bind mount); False for a Kubernetes volume: declared inputs and
    # outputs cannot be checked from here.
    shares_work_dir: bool = True
    # Python packages this adapter needs beyond akoflow's own dependencies, as
    # (importable module, the akoflow extra that installs it).
    requires: tuple[tuple[str, str], ...] = ()

    @classmethod
    def missing(cls) -> str | None:
        """What to install before this adapter can run, or None: asked before a workflow is
        registered, so a plain `pip install akoflow` learns it at once, not mid-run."""
        from importlib.util import find_spec

        for module, extra in cls.requires:
            if find_spec(module) is None:
                return (f"the {cls.kind} executor needs the Python package {module!r}: "
                        f"pip install 'akoflow[{extra}]'")
        return None

    # Site-profile keys this adapter reads, beyond the core's (`akoflow.site_keys`): a
    # profile key nobody reads is an error with a "did you mean". Subclasses list their
    # own; the check takes the union over a class and its bases.
    site_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, site: str, config: Mapping[str, Any]) -> None:
        self.site = site
        self.config = dict(config)

    @abstractmethod
    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        """Start or queue the launches; one job id per launch, in order."""

    @abstractmethod
    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        """Status of the given jobs keyed by job name."""

    @abstractmethod
    def cancel(self, jobs: Sequence[JobRef]) -> None:
        """Stop the given jobs (queued or running); best effort, idempotent."""

    def task_wrapper(self, launch: TaskLaunch) -> list[str]:
        """argv prefix that runs the user's command in the launch's container (task.sh
        appends `bash -eo pipefail -c SCRIPT`); [] runs it directly."""
        return []

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        """Job ids of jobs the scheduler knows under these names (crash repair)."""
        return {}

    def nodes(self) -> list[Node]:
        """The node inventory, refreshed with one call."""
        return []

    @property
    def min_poll_interval(self) -> float:
        """Seconds between status queries this executor tolerates."""
        return float(self.config.get("poll_interval", 0.0))

    def close(self) -> None:
        """Release resources; running jobs keep running."""


def executor_class(kind: str) -> type[Executor]:
    """The adapter registered under `kind` in the `akoflow.executors` entry-point group."""
    ep = plugins.find(ENTRY_POINT_GROUP, kind)
    if ep is None:
        known = ", ".join(available_executors()) or "none (is akoflow installed?)"
        raise ExecutorError(f"no executor {kind!r} is installed; known: {known}")
    try:
        cls = ep.load()
    except ImportError as exc:  # an adapter whose optional dependency is not installed
        raise ExecutorError(f"the {kind} executor cannot be loaded: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise ExecutorError(f"entry point {ep.value!r} is not an akoflow Executor")
    return cls


def available_executors() -> list[str]:
    return plugins.names(ENTRY_POINT_GROUP)
