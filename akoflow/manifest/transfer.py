"""Moving one workflow's rows between manifests (`akoflow pull`), and remote submissions.

Export and import are generic by column name, so tables and columns added later travel too:
a workflow's rows are those of every table with a `workflow_id` column (less the cluster's
own business: webhook outbox and Merkle cache). On import each table keeps the columns both
sides have; rows get fresh ids, and every column named `<table>_id` (and `parent_id`, an
activity) is mapped to the new ids of the table it names. A workflow pulled again replaces
its earlier copy in one transaction under the same local id: updated, never duplicated.

Facts about remote runs live in the `meta` key/value table, so no schema step is needed:
`origin:<local id>` → `SITE:ID` of a pulled copy, `pulled:<site>:<instance>:<id>` → its local
id, and `submission:<key>` → the workflow a remote submission registered (the idempotency
key that makes a repeated submit register once).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from akoflow.manifest.db import ManifestBase, ManifestError

NOT_TRANSFERRED = frozenset({"outbox", "cache"})
ALIASES = {"parent_id": "activity"}  # id columns not named after their table
Rows = dict[str, Any]  # {"columns": [...], "rows": [[...], ...]}
# Tables imported before the others, so ids they hand out are known to those that name them.
FIRST = ("workflow", "activity", "attempt")


class TransferMixin(ManifestBase):
    def _columns(self, table: str) -> list[str]:
        return [str(r[1]) for r in self.conn.execute(f'PRAGMA table_info("{table}")')]

    def workflow_tables(self) -> list[str]:
        """`workflow` and every other table with a `workflow_id` column, in import order."""
        names = [str(r[0]) for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        found = [t for t in names if t not in NOT_TRANSFERRED
                 and "workflow_id" in self._columns(t)]
        return ["workflow", *[t for t in FIRST[1:] if t in found],
                *sorted(t for t in found if t not in FIRST)]

    def export_workflow(self, wf_id: int) -> dict[str, Rows]:
        """Every row of the workflow, table by table, as plain lists (JSON-able)."""
        if self.conn.execute("SELECT 1 FROM workflow WHERE id=?", (wf_id,)).fetchone() is None:
            raise ManifestError(f"no workflow with id {wf_id}")
        out: dict[str, Rows] = {}
        for table in self.workflow_tables():
            key = "id" if table == "workflow" else "workflow_id"
            # in id order, so the ids given on import keep the rows' order (events, files)
            order = " ORDER BY id" if "id" in self._columns(table) else ""
            cur = self.conn.execute(f'SELECT * FROM "{table}" WHERE {key}=?{order}', (wf_id,))
            out[table] = {"columns": [d[0] for d in cur.description],
                          "rows": [list(r) for r in cur]}
        out["meta"] = {"columns": ["key", "value"], "rows": [["instance", self._instance()]]}
        return out

    def _instance(self) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key='instance'").fetchone()
        return str(row[0]) if row else ""

    def import_workflow(self, data: dict[str, Rows], site: str, remote_id: int,
                        rewrite: Callable[[str, str, Any], Any] | None = None) -> int:
        """Store (or replace) the copy of workflow `remote_id` of `site`; its local id.

        `rewrite(table, column, value)` may change values on the way in (paths, say)."""
        instance = str(dict(data.get("meta", {}).get("rows", [])).get("instance", ""))
        pulled_key = f"pulled:{site}:{instance}:{remote_id}"
        with self.transaction() as c:
            row = c.execute("SELECT value FROM meta WHERE key=?", (pulled_key,)).fetchone()
            local = int(row[0]) if row else None
            if local is not None:
                self._delete_workflow(local)
            maps: dict[str, dict[Any, Any]] = {}
            for table in self.workflow_tables():
                if table in data:
                    maps[table] = self._import_table(table, data[table], maps, local, rewrite)
            new_id = next(iter(maps["workflow"].values()))
            c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                          [(pulled_key, str(new_id)),
                           (f"origin:{new_id}", json.dumps({"site": site, "id": remote_id,
                                                            "instance": instance}))])
        return int(new_id)

    def _import_table(self, table: str, rows: Rows, maps: dict[str, dict[Any, Any]],
                      local: int | None, rewrite: Callable[[str, str, Any], Any] | None
                      ) -> dict[Any, Any]:
        cols = [str(c) for c in rows["columns"]]
        keep = [i for i, c in enumerate(cols) if c in set(self._columns(table))]
        names = [cols[i] for i in keep]
        has_id = "id" in names
        idmap: dict[Any, Any] = {}
        if has_id:
            start = local if table == "workflow" and local is not None else self._next_id(table)
            for n, r in enumerate(rows["rows"]):
                idmap[r[cols.index("id")]] = start + n
        out = []
        for r in rows["rows"]:
            values = []
            for i in keep:
                col, value = cols[i], r[i]
                target = "workflow" if col == "workflow_id" else ALIASES.get(col) or (
                    col[:-3] if col.endswith("_id") else None)
                if col == "id" and has_id:
                    value = idmap[value]
                elif target in maps and value is not None:
                    value = maps[target].get(value, value)
                if rewrite is not None:
                    value = rewrite(table, col, value)
                values.append(value)
            out.append(values)
        if out:
            quoted = ", ".join(f'"{n}"' for n in names)
            self.conn.executemany(
                f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(names))})', out)
        return idmap

    def _next_id(self, table: str) -> int:
        row = self.conn.execute(f'SELECT COALESCE(MAX(id), 0) + 1 FROM "{table}"').fetchone()
        return int(row[0])

    def _delete_workflow(self, wf_id: int) -> None:
        for table in self.workflow_tables():
            key = "id" if table == "workflow" else "workflow_id"
            self.conn.execute(f'DELETE FROM "{table}" WHERE {key}=?', (wf_id,))

    def origins(self, ids: Sequence[int] | None = None) -> dict[int, str]:
        """Local id → `SITE:ID` for workflows pulled from a cluster."""
        out: dict[int, str] = {}
        for key, value in self.conn.execute(
                "SELECT key, value FROM meta WHERE key LIKE 'origin:%'"):
            wf_id = int(str(key).split(":", 1)[1])
            if ids is None or wf_id in ids:
                o = json.loads(value)
                out[wf_id] = f"{o['site']}:{o['id']}"
        return out

    def origin_of(self, wf_id: int) -> str | None:
        return self.origins([wf_id]).get(wf_id)

    def submission(self, key: str) -> int | None:
        """The workflow a remote submission with idempotency key `key` registered."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?",
                                (f"submission:{key}",)).fetchone()
        return int(row[0]) if row else None

    def record_submission(self, key: str, wf_id: int) -> None:
        """Call inside the registering transaction, so key and workflow commit together."""
        if not self._depth:
            raise ManifestError("record_submission must run inside the registration")
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
                          (f"submission:{key}", str(wf_id)))
