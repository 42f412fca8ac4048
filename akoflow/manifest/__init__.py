"""The shared SQLite manifest: schema, state machine, and every query akoflow runs."""

from akoflow.manifest.activities import Intent, Submitted
from akoflow.manifest.cache import CacheEntry, CacheMixin
from akoflow.manifest.db import ManifestError, akoflow_home
from akoflow.manifest.outbox import OutboxMixin
from akoflow.manifest.queries import EventFilter, QueriesMixin
from akoflow.manifest.records import (
    ActivityRecord,
    AttemptOutcome,
    AttemptRecord,
    EventRecord,
    FileEntry,
    LiveAttempt,
    MetricSample,
    OutboxRecord,
    WorkflowRecord,
)
from akoflow.manifest.states import (
    LIVE,
    TERMINAL,
    WORKFLOW_ENDED,
    Reason,
    Status,
    WorkflowStatus,
)
from akoflow.manifest.transfer import TransferMixin
from akoflow.manifest.transitions import Completion, TransitionsMixin


class Manifest(TransitionsMixin, QueriesMixin, OutboxMixin, CacheMixin, TransferMixin):
    """The one handle on the manifest database used by every other layer."""


__all__ = [
    "LIVE",
    "TERMINAL",
    "WORKFLOW_ENDED",
    "ActivityRecord",
    "AttemptOutcome",
    "AttemptRecord",
    "CacheEntry",
    "Completion",
    "EventFilter",
    "EventRecord",
    "FileEntry",
    "Intent",
    "LiveAttempt",
    "Manifest",
    "ManifestError",
    "MetricSample",
    "OutboxRecord",
    "Reason",
    "Status",
    "Submitted",
    "WorkflowRecord",
    "WorkflowStatus",
    "akoflow_home",
]
