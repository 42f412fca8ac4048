"""The activity and workflow state machines: every allowed transition, in one table."""

from __future__ import annotations

from enum import Enum
from typing import Final


class Status(str, Enum):
    """Activity (and attempt) states."""

    PENDING = "PENDING"
    READY = "READY"
    SUBMITTING = "SUBMITTING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


class Reason(str, Enum):
    """Why an attempt failed."""

    EXIT = "EXIT"
    TIMEOUT = "TIMEOUT"
    OOM = "OOM"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    LOST = "LOST"
    SUBMIT_ERROR = "SUBMIT_ERROR"
    CANCELLED = "CANCELLED"
    SPEC_ERROR = "SPEC_ERROR"
    MISSING_INPUT = "MISSING_INPUT"  # a declared input was not there when it was to start
    MISSING_OUTPUT = "MISSING_OUTPUT"  # it ended without a declared output


class WorkflowStatus(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


# A workflow in one of these is over: nothing more will run unless `retry` resets it.
WORKFLOW_ENDED: Final[frozenset[str]] = frozenset(
    {WorkflowStatus.FINISHED.value, WorkflowStatus.FAILED.value, WorkflowStatus.CANCELLED.value})

# The kinds of the event table's rows (the run log): an activity's state change, the
# workflow's, its registration, and a failed attempt that will be retried.
EVENT_KINDS: Final = ("STATE", "WORKFLOW", "REGISTERED", "RETRY")
# What `logs --status` may name: a state entered, or an event kind.
LOG_FILTERS: Final = tuple(dict.fromkeys(
    [*(s.value for s in Status), *(w.value for w in WorkflowStatus), *EVENT_KINDS]))

S = Status
# from-state -> states it may move to. Retries (FAILED -> READY) and manual `retry`
# (FAILED/CANCELLED/SKIPPED -> PENDING/READY) are the only ways out of a terminal state.
TRANSITIONS: Final[dict[Status, frozenset[Status]]] = {
    S.PENDING: frozenset({S.READY, S.SKIPPED, S.CANCELLED}),
    S.READY: frozenset({S.SUBMITTING, S.PENDING, S.SKIPPED, S.CANCELLED}),
    S.SUBMITTING: frozenset(
        {S.QUEUED, S.RUNNING, S.FINISHED, S.FAILED, S.READY, S.CANCELLED}
    ),
    S.QUEUED: frozenset({S.RUNNING, S.FINISHED, S.FAILED, S.CANCELLED, S.READY}),
    S.RUNNING: frozenset({S.FINISHED, S.FAILED, S.CANCELLED, S.READY}),
    S.FINISHED: frozenset(),
    S.FAILED: frozenset({S.READY, S.PENDING}),
    S.CANCELLED: frozenset({S.READY, S.PENDING}),
    S.SKIPPED: frozenset({S.READY, S.PENDING, S.CANCELLED}),
}

TERMINAL: Final[frozenset[Status]] = frozenset({S.FINISHED, S.FAILED, S.CANCELLED, S.SKIPPED})
LIVE: Final[frozenset[Status]] = frozenset({S.SUBMITTING, S.QUEUED, S.RUNNING})
UNFINISHED: Final[frozenset[Status]] = frozenset(set(Status) - TERMINAL)


def sources_of(target: Status) -> tuple[str, ...]:
    """States that may move to `target`, as strings for SQL `IN (...)` guards."""
    return tuple(sorted(s.value for s, tos in TRANSITIONS.items() if target in tos))


def can_move(src: Status, dst: Status) -> bool:
    return dst in TRANSITIONS[src]
