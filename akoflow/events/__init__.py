"""Webhooks: AkôFlow-shaped payloads delivered from the manifest's durable outbox.

The manifest writes outbox rows in the same transaction as each state change; this package
only renders them (`render_payload`, seed 001's wire format) and flushes them (`deliver`,
called with a time budget at the end of every dispatch cycle).
"""

from akoflow.events.delivery import backoff, deliver, sign
from akoflow.events.payloads import encode_body, render_payload

__all__ = ["backoff", "deliver", "encode_body", "render_payload", "sign"]
