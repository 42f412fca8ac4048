"""AkôFlow's integer status codes: the mapping from akoflow's states, applied only at this edge.

akoflow's own state machine is strings (`akoflow.manifest.states`); AkôFlow's webhook
payloads (seed 001, "3.2 Webhook Request Format") carry an integer `Status`. The integers
below are the ones AkôFlow's engine itself stores and compares, read from its public source
(github.com/UFFeScience/akoflow, formerly ovvesley/akoflow):

* `pkg/server/repository/activity_repository/activity_repository.go`:
  `StatusCreated = 0`, `StatusRunning = 1`, `StatusFinished = 2`, `StatusCompleted = 3`
  (newer versions also `StatusSyncing = 4`). The first version of that file (the
  "scik8sflow" era) had `StatusError = 3` instead of `StatusCompleted`.
* `pkg/server/repository/workflow_repository/workflow_repository.go`:
  `StatusCreated = 0`, `StatusRunning = 1`, `StatusFinished = 2`.

Activity `Status`:

=================================  ====  ==========================================
akoflow state                      code  AkôFlow name
=================================  ====  ==========================================
PENDING, READY                     0     StatusCreated
SUBMITTING, QUEUED, RUNNING        1     StatusRunning
FINISHED                           2     StatusFinished
FAILED, CANCELLED, SKIPPED         3     StatusError (original activity repository)
=================================  ====  ==========================================

Workflow `Status`:

=================================  ====  ==========================================
PENDING                            0     StatusCreated
RUNNING                            1     StatusRunning
FINISHED                           2     StatusFinished
FAILED, CANCELLED                  3     (activity StatusError, see below)
=================================  ====  ==========================================

Reconciling with seed 001: its example `ACTIVITY_COMPLETED` and `WORKFLOW_DONE` bodies show
`"Status": 1` and the field table says "e.g., 1 for completed". In AkôFlow's source 1 is
`StatusRunning`; an activity whose Slurm/Kubernetes job completed is stored as
`StatusFinished` (2) and a workflow whose activities all ended is set to
`workflow_repository.StatusFinished` (2). We follow the source, so a consumer that reads the
same integers out of AkôFlow's database or API sees the same meaning here; the event `type`
already says "completed". The seed's example is illustrative (its other values are
placeholders too, e.g. base64 of "some-encoded-value").

Failures: AkôFlow's current runtime services store a failed job as `StatusFinished` too (no
distinct failure code), which would make `Status == 2` ambiguous for consumers. We use 3,
AkôFlow's original `StatusError`. Later AkôFlow versions reuse 3 as `StatusCompleted`, but only
for pre-activity (storage) bookkeeping, which never appears in an activity webhook. The event
type (`ACTIVITY_FAILED`, `WORKFLOW_FAILED`) is the authoritative signal either way.
"""

from __future__ import annotations

from typing import Final

from akoflow.port import Status, WorkflowStatus

CREATED: Final = 0
RUNNING: Final = 1
FINISHED: Final = 2
ERROR: Final = 3

ACTIVITY_CODES: Final[dict[str, int]] = {
    Status.PENDING.value: CREATED,
    Status.READY.value: CREATED,
    Status.SUBMITTING.value: RUNNING,
    Status.QUEUED.value: RUNNING,
    Status.RUNNING.value: RUNNING,
    Status.FINISHED.value: FINISHED,
    Status.FAILED.value: ERROR,
    Status.CANCELLED.value: ERROR,
    Status.SKIPPED.value: ERROR,
}

WORKFLOW_CODES: Final[dict[str, int]] = {
    WorkflowStatus.PENDING.value: CREATED,
    WorkflowStatus.RUNNING.value: RUNNING,
    WorkflowStatus.FINISHED.value: FINISHED,
    WorkflowStatus.FAILED.value: ERROR,
    WorkflowStatus.CANCELLED.value: ERROR,
}


def status_code(event_type: str, status: object) -> int:
    """The AkôFlow integer for a state; an unknown state falls back on the event's meaning.

    The fallback keeps a row whose snapshot predates a new state from blocking delivery.
    """
    table = WORKFLOW_CODES if event_type.startswith("WORKFLOW") else ACTIVITY_CODES
    code = table.get(str(status))
    if code is not None:
        return code
    return ERROR if event_type.endswith("FAILED") else FINISHED
