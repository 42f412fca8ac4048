"""The shared SQLite manifest: schema, state machine, and every query akoflow runs.

It stands behind the port: it uses the port's records and states (`akoflow.port`), and
nothing of the port, the worker or an adapter imports it."""

from akoflow.manifest.activities import Intent, Submitted
from akoflow.manifest.cache import CacheEntry, CacheMixin
from akoflow.manifest.db import ManifestError
from akoflow.manifest.outbox import OutboxMixin
from akoflow.manifest.queries import EventFilter, QueriesMixin
from akoflow.manifest.records import (
    ActivityRecord,
    AttemptRecord,
    EventRecord,
    LiveAttempt,
    OutboxRecord,
    WorkflowRecord,
)
from akoflow.manifest.states import LIVE, TERMINAL, WORKFLOW_ENDED
from akoflow.manifest.transfer import TransferMixin
from akoflow.manifest.transitions import Completion, TransitionsMixin


class Manifest(TransitionsMixin, QueriesMixin, OutboxMixin, CacheMixin, TransferMixin):
    """The one handle on the manifest database used by every other layer."""


__all__ = [
    "LIVE",
    "TERMINAL",
    "WORKFLOW_ENDED",
    "ActivityRecord",
    "AttemptRecord",
    "CacheEntry",
    "Completion",
    "EventFilter",
    "EventRecord",
    "Intent",
    "LiveAttempt",
    "Manifest",
    "ManifestError",
    "OutboxRecord",
    "Submitted",
    "WorkflowRecord",
]
