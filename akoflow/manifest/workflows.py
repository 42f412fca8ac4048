"""Workflow rows: registration (one transaction), lookup, listing and completion."""

from __future__ import annotations

import getpass
import json
import os
import time
from typing import Any

from akoflow.manifest.db import ManifestBase, ManifestError, select_list
from akoflow.manifest.guards import workflow_moving
from akoflow.manifest.records import WorkflowRecord
from akoflow.manifest.states import TERMINAL, WORKFLOW_ENDED
from akoflow.port import Status, WorkflowStatus
from akoflow.port.names import ident
from akoflow.spec.identity import merkle_identities
from akoflow.spec.models import ActivitySpec, WorkflowSpec

# The spec texts live in workflow_spec; the light form leaves them empty (megabytes for big
# workflows, never needed on the dispatcher's hot path).
_TEXTS = {"raw_spec": "s.raw_spec", "spec_json": "s.spec_json"}
WF_SELECT = (f"SELECT {select_list(WorkflowRecord, 'w', _TEXTS)} FROM workflow w"
             " JOIN workflow_spec s ON s.workflow_id = w.id")
WF_SELECT_LIGHT = (f"SELECT {select_list(WorkflowRecord, 'w', dict.fromkeys(_TEXTS, repr('')))}"
                   " FROM workflow w")


def container_settings(spec: WorkflowSpec, act: ActivitySpec) -> dict[str, Any]:
    """What container executors need beyond the image: mount, volumes, storage policy (and
    the spec's sampling interval). Empty for a plain activity, so the common case stores `{}`."""
    out: dict[str, Any] = {}
    mount = act.mount_path or spec.mount_path
    if mount:
        out["mount_path"] = mount
    if spec.volumes:
        out["volumes"] = [[v.host, v.container] for v in spec.volumes]
    policy = spec.storage_policy
    if policy.type != "default" or policy.storage_class_name or policy.storage_size:
        out["storage"] = {"type": policy.type, "class": policy.storage_class_name,
                          "size": policy.storage_size,
                          "access_modes": list(policy.access_modes)}
    if act.keep_disk:
        out["keep_disk"] = True
    if spec.namespace != "akoflow":
        out["namespace"] = spec.namespace
    if spec.sample_interval:  # the spec's own; else the site's (dispatch/cycle.py)
        out["sample_interval"] = spec.sample_interval
    return out


def fresh_run_dir(run_root: str, name: str, wf_id: int, instance: str) -> str:
    """`<root>/<name ident>-<id>-<manifest instance>`, never one that exists already.

    A run directory holds attempt files (pid, exit code, result.json) that a dispatcher
    adopts as its own. Naming it for the manifest's instance means a new manifest (the old
    one deleted or truncated: workflow ids start again at 1) cannot meet an old run's files
    and report their results as its own; a directory that exists anyway (a restored backup
    of the manifest) is skipped, never reused."""
    base = f"{run_root.rstrip('/')}/{ident(name)}-{wf_id}-{instance}"
    path, n = base, 1
    while os.path.lexists(path):
        n += 1
        path = f"{base}.{n}"
    return path


def _declared(act: ActivitySpec) -> str:
    """The activity's declared files (`{}` for the common case of none)."""
    out = {k: v for k, v in (("inputs", act.inputs), ("outputs", act.outputs)) if v}
    return json.dumps(out) if out else "{}"


class WorkflowsMixin(ManifestBase):
    def register_workflow(
        self,
        spec: WorkflowSpec,
        *,
        run_root: str,
        work_dir: str | None = None,
        site: str | None = None,
    ) -> WorkflowRecord:
        """Insert the workflow, its activities and edges in one transaction.

        Roots start READY, the rest PENDING with `unfinished_parents` set, so readiness
        later is a counter decrement per finished parent (O(changed), not O(workflow)).
        """
        now = time.time()
        spec_json = spec.model_dump_json(by_alias=True)
        identities = merkle_identities(spec)
        hooks = json.dumps([h.model_dump() for h in spec.webhooks])
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO workflow (name, namespace, runtime, spec_path, status, created_at,"
                " run_dir, work_dir, site, webhooks, owner, schedule)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (spec.name, spec.namespace, spec.runtime, spec.source,
                 WorkflowStatus.PENDING.value, now, "", "", site, hooks, _user(), spec.schedule),
            )
            wf_id = int(cur.lastrowid or 0)
            c.execute("INSERT INTO workflow_spec (workflow_id, raw_spec, spec_json)"
                      " VALUES (?,?,?)", (wf_id, spec.raw, spec_json))
            run_dir = fresh_run_dir(run_root, spec.name, wf_id, self.instance_id())
            wdir = work_dir or f"{run_dir}/work"
            c.execute("UPDATE workflow SET run_dir=?, work_dir=? WHERE id=?",
                      (run_dir, wdir, wf_id))
            rows = []
            for seq, act in enumerate(spec.activities):
                res = act.resources.model_dump()
                status = Status.PENDING if act.depends_on else Status.READY
                rows.append((
                    wf_id, seq, act.name, act.run, spec.effective_image(act),
                    spec.effective_runtime(act), json.dumps(res), json.dumps(act.env),
                    spec.effective_alpha(act), act.retries, act.retry_memory_factor,
                    status.value, len(set(act.depends_on)), now, identities[act.name],
                    int(act.cache), json.dumps(container_settings(spec, act)), act.estimate,
                    _declared(act),
                ))
            c.executemany(
                "INSERT INTO activity (workflow_id, seq, name, run, image, runtime, resources,"
                " env, alpha, retries, retry_memory_factor, status, unfinished_parents,"
                " created_at, identity, cache, container, estimate, declared)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            ids = dict(c.execute("SELECT name, id FROM activity WHERE workflow_id=?", (wf_id,)))
            c.executemany(
                "INSERT INTO activity_dependency (workflow_id, activity_id, parent_id)"
                " VALUES (?,?,?)",
                [
                    (wf_id, ids[a.name], ids[p])
                    for a in spec.activities
                    for p in sorted(set(a.depends_on))
                ],
            )
            self.add_event(wf_id, None, None, "REGISTERED",
                           message=f"{len(spec.activities)} activities")
        record = self.get_workflow(wf_id, texts=False)
        return record

    def get_workflow(self, wf_id: int, *, texts: bool = True) -> WorkflowRecord:
        """The workflow row; `texts=False` leaves out the spec texts (megabytes for big
        workflows), which the dispatcher's hot path never needs."""
        select = WF_SELECT if texts else WF_SELECT_LIGHT
        rec = self._one(WorkflowRecord, f"{select} WHERE w.id=?", (wf_id,))
        if rec is None:
            raise ManifestError(f"no workflow with id {wf_id}")
        return rec

    def workflow_status(self, wf_id: int) -> str:
        row = self.conn.execute("SELECT status FROM workflow WHERE id=?", (wf_id,)).fetchone()
        if row is None:
            raise ManifestError(f"no workflow with id {wf_id}")
        return str(row[0])

    def find_workflow(self, ref: str) -> WorkflowRecord:
        """By numeric id, or the newest workflow with that name."""
        if ref.isdigit():
            return self.get_workflow(int(ref), texts=False)
        rec = self._one(
            WorkflowRecord, f"{WF_SELECT_LIGHT} WHERE w.name=? ORDER BY w.id DESC LIMIT 1",
            (ref,),
        )
        if rec is None:
            raise ManifestError(f"no workflow with id or name {ref!r} (see `akoflow list`)")
        return rec

    def list_workflows(self, limit: int = 50, status: str | None = None) -> list[WorkflowRecord]:
        where, params = ("WHERE w.status=?", (status, limit)) if status else ("", (limit,))
        return self._rows(
            WorkflowRecord, f"{WF_SELECT_LIGHT} {where} ORDER BY w.id DESC LIMIT ?", params)

    def status_counts(self, wf_id: int) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT status, COUNT(*) FROM activity WHERE workflow_id=? GROUP BY status", (wf_id,)
        )
        return {str(s): int(n) for s, n in rows}

    def mark_workflow_started(self, wf_id: int) -> None:
        where, states = workflow_moving(WorkflowStatus.RUNNING, among=[WorkflowStatus.PENDING])
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE workflow SET status=?, started_at=COALESCE(started_at, ?)"
                f" WHERE id=? AND {where}",
                (WorkflowStatus.RUNNING.value, time.time(), wf_id, *states),
            )
            if cur.rowcount:
                self.add_event(wf_id, None, None, "WORKFLOW", WorkflowStatus.PENDING.value,
                               WorkflowStatus.RUNNING.value)

    def declarations(self, wf_id: int) -> dict[int, dict[str, list[str]]]:
        """Activity id -> its declared inputs/outputs, for activities that declare any."""
        rows = self.conn.execute(
            "SELECT id, declared FROM activity WHERE workflow_id=? AND declared<>'{}'",
            (wf_id,)).fetchall()
        return {int(i): json.loads(d) for i, d in rows}

    def dispatcher_alive(self, wf_id: int) -> None:
        """A dispatcher is at work on the workflow now (and the last failure is past)."""
        with self.transaction() as c:
            c.execute("UPDATE workflow SET dispatcher_seen_at=?, dispatcher_error=NULL"
                      " WHERE id=?", (time.time(), wf_id))

    def dispatcher_failed(self, wf_id: int, why: str) -> None:
        """Why the workflow's dispatcher stopped before the workflow ended."""
        with self.transaction() as c:
            c.execute("UPDATE workflow SET dispatcher_error=? WHERE id=?", (why[:2000], wf_id))

    def set_dispatcher_job(self, wf_id: int, job: str | None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE workflow SET dispatcher_job=? WHERE id=?", (job, wf_id))

    def finalize_workflow(self, wf_id: int) -> str | None:
        """When no activity is unfinished, settle the workflow's final status (once)."""
        with self.transaction() as c:
            wf = self.get_workflow(wf_id, texts=False)
            if wf.status in WORKFLOW_ENDED:
                return None
            counts = self.status_counts(wf_id)
            if any(n for s, n in counts.items() if Status(s) not in TERMINAL):
                return None
            if counts.get(Status.CANCELLED.value):
                final = WorkflowStatus.CANCELLED
            elif counts.get(Status.FAILED.value) or counts.get(Status.SKIPPED.value):
                final = WorkflowStatus.FAILED
            else:
                final = WorkflowStatus.FINISHED
            where, states = workflow_moving(final, among=[WorkflowStatus(wf.status)])
            cur = c.execute(f"UPDATE workflow SET status=?, finished_at=? WHERE id=? AND {where}",
                            (final.value, time.time(), wf_id, *states))
            if not cur.rowcount:
                return None
            event = self.add_event(wf_id, None, None, "WORKFLOW", wf.status, final.value)
            kind = "WORKFLOW_DONE" if final is WorkflowStatus.FINISHED else "WORKFLOW_FAILED"
            # Keyed by the event row: a workflow retried and finished again notifies again.
            if self.webhooks_of(wf_id):
                self.enqueue_webhooks(wf_id, None, kind, _wf_payload(self.get_workflow(wf_id)),
                                      f"{kind}-{event}")
            return final.value

    def add_event(
        self,
        wf_id: int,
        activity_id: int | None,
        attempt: int | None,
        kind: str,
        from_status: str | None = None,
        to_status: str | None = None,
        node: str | None = None,
        message: str | None = None,
        ts: float | None = None,
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO event (workflow_id, activity_id, attempt, ts, kind, from_status,"
            " to_status, node, message) VALUES (?,?,?,?,?,?,?,?,?)",
            (wf_id, activity_id, attempt, ts or time.time(), kind, from_status, to_status, node,
             message),
        )
        return int(cur.lastrowid or 0)

    def webhooks_of(self, wf_id: int) -> list[dict[str, Any]]:
        """The workflow's webhooks (cached: they never change after registration)."""
        cache: dict[int, list[dict[str, Any]]] = self.__dict__.setdefault("_hooks", {})
        if wf_id not in cache:
            row = self.conn.execute("SELECT webhooks FROM workflow WHERE id=?", (wf_id,))
            cache[wf_id] = json.loads(row.fetchone()[0])
        return cache[wf_id]

    def enqueue_webhooks(
        self, wf_id: int, activity_id: int | None, event_type: str, payload: dict[str, Any],
        key: str,
    ) -> None:
        """Durable outbox rows, written in the caller's transaction with the state change."""
        hooks = self.webhooks_of(wf_id)
        if not hooks:
            return
        now = time.time()
        body = json.dumps(payload)
        self.conn.executemany(
            "INSERT OR IGNORE INTO outbox (workflow_id, activity_id, event_type, url, hook_name,"
            " payload, idempotency_key, created_at, next_try_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (wf_id, activity_id, event_type, h["url"], h["name"], body,
                 f"akoflow-{wf_id}-{key}-{h['name']}", now, now)
                for h in hooks
            ],
        )


def _wf_payload(wf: WorkflowRecord) -> dict[str, Any]:
    return {
        "id": wf.id, "name": wf.name, "namespace": wf.namespace, "runtime": wf.runtime,
        "raw_spec": wf.raw_spec, "status": wf.status, "created_at": wf.created_at,
        "started_at": wf.started_at, "finished_at": wf.finished_at,
    }


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return None
