"""SQL guards built from the state tables (states.py): the tables are what the UPDATEs obey.

Every UPDATE that changes a status carries `status IN (...)` from `moving()`, so a move the
table lacks matches no row: it cannot happen, whatever the Python around it believes.
SQLite accepts an empty `IN ()` (false), which is what a target no state may reach gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from akoflow.manifest.states import (
    ATTEMPT_TRANSITIONS,
    TRANSITIONS,
    WORKFLOW_TRANSITIONS,
    E,
    sources_in,
)
from akoflow.port import Status, WorkflowStatus

Guard = tuple[str, tuple[str, ...]]  # (`status IN (?,...)`, its parameters)


def guard(table: Mapping[E, frozenset[E]], *targets: E, among: Iterable[E] | None = None,
          column: str = "status") -> Guard:
    """`column IN (...)` over the states `table` lets move to every one of `targets` (a
    `CASE` may pick either), narrowed to `among` when the caller expects a given state."""
    wanted = None if among is None else {s.value for s in among}
    states = tuple(s for s in sources_in(table, *targets) if wanted is None or s in wanted)
    return f"{column} IN ({','.join('?' * len(states))})", states


def activity_moving(*targets: Status, among: Iterable[Status] | None = None,
                    column: str = "status") -> Guard:
    return guard(TRANSITIONS, *targets, among=among, column=column)


def attempt_moving(*targets: Status, among: Iterable[Status] | None = None) -> Guard:
    return guard(ATTEMPT_TRANSITIONS, *targets, among=among)


def workflow_moving(*targets: WorkflowStatus,
                    among: Iterable[WorkflowStatus] | None = None) -> Guard:
    return guard(WORKFLOW_TRANSITIONS, *targets, among=among)
