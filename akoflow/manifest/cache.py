"""The Merkle cache: identity -> outputs of a finished activity, reusable by later runs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from akoflow.manifest.activities import ACT_COLS
from akoflow.manifest.db import ManifestBase, select_list
from akoflow.manifest.records import ActivityRecord
from akoflow.port import FileEntry, Status


@dataclass(frozen=True)
class CacheEntry:
    identity: str
    workflow_id: int
    activity_id: int
    work_dir: str
    outputs: list[FileEntry]


class CacheMixin(ManifestBase):
    def cache_lookup(self, identity: str) -> CacheEntry | None:
        rows = self._dicts(f"SELECT {select_list(CacheEntry)} FROM cache WHERE identity=?",
                           (identity,))
        if not rows:
            return None
        outputs = [FileEntry(p, s, m, "generated", h) for p, s, m, h in
                   json.loads(rows[0]["outputs"])]
        return CacheEntry(**{**rows[0], "outputs": outputs})

    def cache_store(self, identity: str, wf_id: int, activity_id: int, work_dir: str,
                    outputs: list[FileEntry]) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO cache (identity, workflow_id, activity_id, work_dir,"
                " outputs, created_at) VALUES (?,?,?,?,?,?)",
                (identity, wf_id, activity_id, work_dir,
                 json.dumps([[f.path, f.size, f.mtime, f.hash] for f in outputs]), time.time()))

    def cache_forget(self, identity: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM cache WHERE identity=?", (identity,))

    def ready_cacheable(self, wf_id: int, limit: int = 1000) -> list[ActivityRecord]:
        return self._rows(
            ActivityRecord,
            f"SELECT {ACT_COLS} FROM activity WHERE workflow_id=? AND status=? AND cache=1"
            " ORDER BY seq LIMIT ?",
            (wf_id, Status.READY.value, limit),
        )

    def uses_cache(self, wf_id: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM activity WHERE workflow_id=? AND cache=1 LIMIT 1", (wf_id,))
        return row.fetchone() is not None
