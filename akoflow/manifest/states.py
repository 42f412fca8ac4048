"""The state machines of activities, attempts and workflows: every allowed move, in tables.

The tables are the rule, not a description of it: every UPDATE of a status in the manifest
is guarded by `status IN (...)` built from them (`akoflow/manifest/guards.py`), so a move a
table lacks matches no row and cannot happen. The states themselves, and the reasons, are
the port's (`akoflow/port/states.py`): workers and adapters name them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeVar

from akoflow.port.states import Status, WorkflowStatus

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
W = WorkflowStatus
# Activities: from-state -> states it may move to. Retries (live -> READY) and manual `retry`
# (FAILED/CANCELLED/SKIPPED -> PENDING/READY) are the only ways out of an end state. PENDING
# -> SUBMITTING is a child queued ahead of its parents (`afterok`); such an attempt taken back
# goes to PENDING again, and is SKIPPED when an ancestor fails for good.
TRANSITIONS: Final[dict[Status, frozenset[Status]]] = {
    S.PENDING: frozenset({S.READY, S.SUBMITTING, S.SKIPPED, S.CANCELLED}),
    S.READY: frozenset({S.SUBMITTING, S.SKIPPED, S.CANCELLED}),
    S.SUBMITTING: frozenset(
        {S.QUEUED, S.RUNNING, S.FINISHED, S.FAILED, S.READY, S.PENDING, S.SKIPPED, S.CANCELLED}
    ),
    S.QUEUED: frozenset(
        {S.RUNNING, S.FINISHED, S.FAILED, S.READY, S.PENDING, S.SKIPPED, S.CANCELLED}),
    S.RUNNING: frozenset({S.FINISHED, S.FAILED, S.READY, S.CANCELLED}),
    S.FINISHED: frozenset(),
    S.FAILED: frozenset({S.READY, S.PENDING}),
    S.CANCELLED: frozenset({S.READY, S.PENDING}),
    S.SKIPPED: frozenset({S.READY, S.PENDING}),
}
# Attempts: one try, never reopened (a retry is a new attempt).
ATTEMPT_TRANSITIONS: Final[dict[Status, frozenset[Status]]] = {
    S.SUBMITTING: frozenset({S.QUEUED, S.RUNNING, S.FINISHED, S.FAILED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.FINISHED, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.FINISHED, S.FAILED, S.CANCELLED}),
    S.FINISHED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
# Workflows: `retry` reopens an ended one.
WORKFLOW_TRANSITIONS: Final[dict[WorkflowStatus, frozenset[WorkflowStatus]]] = {
    W.PENDING: frozenset({W.RUNNING, W.FINISHED, W.FAILED, W.CANCELLED}),
    W.RUNNING: frozenset({W.FINISHED, W.FAILED, W.CANCELLED}),
    W.FINISHED: frozenset({W.RUNNING}),
    W.FAILED: frozenset({W.RUNNING}),
    W.CANCELLED: frozenset({W.RUNNING}),
}

TERMINAL: Final[frozenset[Status]] = frozenset({S.FINISHED, S.FAILED, S.CANCELLED, S.SKIPPED})
LIVE: Final[frozenset[Status]] = frozenset({S.SUBMITTING, S.QUEUED, S.RUNNING})
UNFINISHED: Final[frozenset[Status]] = frozenset(set(Status) - TERMINAL)

E = TypeVar("E", Status, WorkflowStatus)


def sources_in(table: Mapping[E, frozenset[E]], *targets: E) -> tuple[str, ...]:
    """States that `table` lets move to every one of `targets`, as strings for SQL
    `IN (...)` guards. Read at each call: the table is the rule."""
    return tuple(sorted(s.value for s, tos in table.items() if all(t in tos for t in targets)))


def sources_of(*targets: Status) -> tuple[str, ...]:
    """States an activity may leave for every one of `targets`."""
    return sources_in(TRANSITIONS, *targets)


def can_move(src: Status, dst: Status) -> bool:
    return dst in TRANSITIONS[src]
