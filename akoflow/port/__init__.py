"""The port: everything adapters (`executors/`) and the worker import of akoflow, and nothing
else of the core. It imports nothing of akoflow outside itself; the SQL layer
(`akoflow/manifest/`) stays behind it, using its records and states, never the reverse.

- `executor`: the `Executor` core, `TaskLaunch`, `JobRef`, `JobState`, `JobStatus`, `Node`,
  errors, entry-point discovery (`plugins`);
- `capabilities`: what only some executors do (in-process runners, dispatcher hosts);
- `records`, `states`: what an attempt's outcome is made of, and the words for states and
  reasons;
- `protocol`: the files of an attempt directory; `units`, `names`, `home`: the helpers
  adapters and the worker share with the core.
"""

from akoflow.port.capabilities import (
    DispatcherHost,
    InProcessRunner,
    chains_after_ok,
    dispatcher_host,
    in_process,
)
from akoflow.port.executor import (
    ALLOCATION_ENDED,
    ENDED_STATES,
    ENTRY_POINT_GROUP,
    NEVER_SATISFIED,
    Executor,
    ExecutorError,
    JobRef,
    JobState,
    JobStatus,
    Node,
    SpecError,
    SubmitError,
    TaskLaunch,
    available_executors,
    executor_class,
)
from akoflow.port.home import akoflow_argv, akoflow_home
from akoflow.port.records import AttemptOutcome, FileEntry, MetricSample, text_path
from akoflow.port.resources import Resources
from akoflow.port.states import Reason, Status, WorkflowStatus

__all__ = [
    "ALLOCATION_ENDED",
    "ENDED_STATES",
    "ENTRY_POINT_GROUP",
    "NEVER_SATISFIED",
    "AttemptOutcome",
    "DispatcherHost",
    "Executor",
    "ExecutorError",
    "FileEntry",
    "InProcessRunner",
    "JobRef",
    "JobState",
    "JobStatus",
    "MetricSample",
    "Node",
    "Reason",
    "Resources",
    "SpecError",
    "Status",
    "SubmitError",
    "TaskLaunch",
    "WorkflowStatus",
    "akoflow_argv",
    "akoflow_home",
    "available_executors",
    "chains_after_ok",
    "dispatcher_host",
    "executor_class",
    "in_process",
    "text_path",
]
