"""Flush the webhook outbox within a time budget (dispatch cycle, step 7).

Delivery is at-least-once: a row is marked delivered only after a 2xx, so a crash between
the answer and the mark re-sends it. Receivers drop duplicates by the `Idempotency-Key`
header, which is the row's stable key.

Order: rows are sent oldest first, and the first row of a URL that is not delivered --
because it failed in this call, or because it is still waiting for its backoff -- blocks
every later row for that URL. So a receiver never sees an activity's later event, or the
workflow's final event, before an earlier one, across calls and crashes. The price is
head-of-line blocking per URL, which is what an ordered webhook stream means.

Budget: the clock is checked before every POST, and each POST is given
`min(timeout, remaining)` as a deadline for the whole exchange (transport.post enforces it
whatever the receiver does, even one byte per second), so a dead or slow receiver costs at
most the budget (plus one database write) -- the dispatcher must never wait on a webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from akoflow.events.payloads import ACTIVITY_EVENTS, encode_body, render_payload
from akoflow.manifest import Manifest, ManifestError, OutboxRecord

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0  # seconds before the first retry
BACKOFF_CAP = 300.0  # longest wait between two tries, before jitter
JITTER = 0.1  # up to +10% so many dispatchers do not retry in lock-step
PAGE = 200  # outbox rows read per query

_rng = random.Random()


def backoff(tries: int) -> float:
    """Seconds until the next try after `tries` earlier failed tries: 1, 2, 4 ... 300, +jitter."""
    base = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(max(tries, 0), 32))
    return base + _rng.uniform(0.0, base * JITTER)


def sign(secret: str, body: bytes) -> str:
    """`X-Akoflow-Signature` value: `sha256=` + hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def deliver(
    m: Manifest,
    wf_id: int | None,
    budget: float,
    *,
    secret: str | None = None,
    timeout: float = 5.0,
) -> int:
    """POST due outbox rows (one workflow, or all when `wf_id` is None); returns how many
    were delivered. Never raises for network errors; database errors propagate.

    `secret`, when given, signs every row and overrides the per-webhook `secret` of the
    spec (a site-level secret configured by the operator wins over one in a user's YAML).
    """
    run = _Run(m, secret, timeout, time.monotonic() + max(budget, 0.0))
    delivered = 0
    while True:
        rows = m.due_outbox(wf_id, float("inf"), PAGE)
        sent = 0
        for row in rows:
            if not run.time_left():
                return delivered + sent
            sent += run.handle(row)
        delivered += sent
        if len(rows) < PAGE or sent == 0:
            return delivered


@dataclass
class _Run:
    """State of one `deliver` call: the deadline, blocked URLs, per-workflow lookups."""

    m: Manifest
    secret: str | None
    timeout: float
    deadline: float
    blocked: set[str] = field(default_factory=set)
    workflows: dict[int, _WorkflowInfo] = field(default_factory=dict)

    def time_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def handle(self, row: OutboxRecord) -> int:
        """Try one row unless its URL is blocked; 1 if it was delivered. Whatever goes wrong
        with one row (a URL that cannot be parsed, a payload that cannot be rendered) fails
        that row alone, into its `last_error`; only database errors propagate."""
        try:
            return self._handle(row)
        except sqlite3.Error:
            raise
        except Exception as exc:  # one bad row must not stop the others
            self._failed(row, f"{type(exc).__name__}: {exc}")
            return 0

    def _handle(self, row: OutboxRecord) -> int:
        if row.url in self.blocked:
            return 0
        if row.next_try_at > time.time():
            self.blocked.add(row.url)  # an earlier row still waits: keep the order
            return 0
        try:
            body, signer = self._body(row)
        except (KeyError, TypeError, ValueError) as exc:  # a corrupt snapshot: a bug, keep it
            self._failed(row, f"cannot render payload: {exc!r}")
            return 0
        remaining = self.time_left()
        if remaining <= 0:
            return 0
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": row.idempotency_key,
            "X-Akoflow-Event": row.event_type,
            "X-Akoflow-Delivery-Attempt": str(row.tries + 1),
            "User-Agent": "akoflow-webhooks",
        }
        if signer:
            headers["X-Akoflow-Signature"] = sign(signer, body)
        from akoflow.events.transport import post  # http/ssl: only when there is a hook

        error = post(row.url, body, headers, min(self.timeout, remaining))
        if error is None:
            self.m.mark_delivered(row.id)
            log.debug("webhook %s %s delivered to %s", row.event_type, row.id, row.hook_name)
            return 1
        self._failed(row, error)
        return 0

    def _failed(self, row: OutboxRecord, error: str) -> None:
        delay = backoff(row.tries)
        self.m.mark_delivery_failed(row.id, time.time() + delay, error)
        self.blocked.add(row.url)
        log.warning(
            "webhook %s (row %s, attempt %s) to %r failed: %s; next try in %.0f s",
            row.event_type, row.id, row.tries + 1, row.hook_name, error, delay,
        )

    def _body(self, row: OutboxRecord) -> tuple[bytes, str | None]:
        info = self._workflow(row.workflow_id)
        snapshot: dict[str, Any] = json.loads(row.payload)
        names = info.parent_names(self.m) if row.event_type in ACTIVITY_EVENTS else None
        document = render_payload(
            row.event_type, snapshot, namespace=info.namespace, parent_names=names,
            raw_fallback=info.raw_fallback,
        )
        return encode_body(document), self.secret or info.secrets.get(row.hook_name)

    def _workflow(self, wf_id: int) -> _WorkflowInfo:
        info = self.workflows.get(wf_id)
        if info is None:
            info = self.workflows[wf_id] = _WorkflowInfo.load(self.m, wf_id)
        return info


@dataclass
class _WorkflowInfo:
    """What rendering and signing need from the workflow row, read once per call."""

    wf_id: int
    namespace: str = ""
    raw_fallback: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    _names: dict[int, str] | None = None

    @classmethod
    def load(cls, m: Manifest, wf_id: int) -> _WorkflowInfo:
        try:
            wf = m.get_workflow(wf_id)
        except ManifestError:  # rows outlived their workflow: still deliverable, unsigned
            log.warning("outbox rows for unknown workflow %s", wf_id)
            return cls(wf_id)
        secrets: dict[str, str] = {}
        try:
            for hook in json.loads(wf.webhooks or "[]"):
                if isinstance(hook, dict) and hook.get("secret"):
                    secrets[str(hook.get("name"))] = str(hook["secret"])
        except ValueError:
            log.warning("workflow %s: unreadable webhooks column; sending unsigned", wf_id)
        return cls(wf_id, wf.namespace, wf.spec_json, secrets)

    def parent_names(self, m: Manifest) -> dict[int, str]:
        if self._names is None:
            self._names = {a.id: a.name for a in m.activities(self.wf_id)}
        return self._names
