"""The webhook outbox: durable rows, claimed for delivery and settled afterwards."""

from __future__ import annotations

import time

from akoflow.manifest.db import ManifestBase, select_list
from akoflow.manifest.records import OutboxRecord

OUTBOX_COLS = select_list(OutboxRecord)


class OutboxMixin(ManifestBase):
    def due_outbox(self, wf_id: int | None, now: float, limit: int = 100) -> list[OutboxRecord]:
        """Undelivered rows whose retry time has come, oldest first (per-activity order)."""
        wf_sql = "AND workflow_id=?" if wf_id is not None else ""
        params: tuple[object, ...] = (now, wf_id, limit) if wf_id is not None else (now, limit)
        return self._rows(
            OutboxRecord,
            f"SELECT {OUTBOX_COLS} FROM outbox WHERE delivered_at IS NULL AND next_try_at<=?"
            f" {wf_sql} ORDER BY id LIMIT ?",
            params,
        )

    def outbox_rows(self, wf_id: int) -> list[OutboxRecord]:
        return self._rows(
            OutboxRecord,
            f"SELECT {OUTBOX_COLS} FROM outbox WHERE workflow_id=? ORDER BY id", (wf_id,)
        )

    def mark_delivered(self, outbox_id: int) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE outbox SET delivered_at=?, tries=tries+1, last_error=NULL WHERE id=?",
                (time.time(), outbox_id),
            )

    def mark_delivery_failed(self, outbox_id: int, next_try_at: float, error: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE outbox SET tries=tries+1, next_try_at=?, last_error=? WHERE id=?",
                (next_try_at, error[:500], outbox_id),
            )
