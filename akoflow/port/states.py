"""The states of activities, attempts and workflows, and why an attempt ended without
finishing: the words the worker, the adapters and the core share. Which moves between them
are allowed is the manifest's rule (`akoflow/manifest/states.py`)."""

from __future__ import annotations

from enum import Enum


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
    """Why an attempt ended without finishing (its `reason` column; an activity's too)."""

    EXIT = "EXIT"
    TIMEOUT = "TIMEOUT"
    OOM = "OOM"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    LOST = "LOST"
    SUBMIT_ERROR = "SUBMIT_ERROR"
    CANCELLED = "CANCELLED"
    SPEC_ERROR = "SPEC_ERROR"
    ABANDONED = "ABANDONED"  # the intent never reached the executor: submitted again
    WITHDRAWN = "WITHDRAWN"  # queued ahead on parents that cannot succeed now: taken back
    SKIPPED = "SKIPPED"  # queued ahead, and an ancestor failed for good
    MISSING_INPUT = "MISSING_INPUT"  # a declared input was not there when it was to start
    MISSING_OUTPUT = "MISSING_OUTPUT"  # it ended without a declared output


class WorkflowStatus(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
