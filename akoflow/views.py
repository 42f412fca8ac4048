"""What each inspection command shows, as JSON-able data: the CLI renders it, here or on a
laptop that asked a cluster for it over SSH (`akoflow.remote.serve` calls these same
functions), so a remote `status` looks exactly like a local one.

Every function takes the manifest and a workflow reference (id or name) and returns plain
dicts and lists (times as ISO-8601 strings, as `--json` prints them). Errors a user can
cause are `ManifestError`s with one clear line.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from akoflow.manifest import WORKFLOW_ENDED, EventFilter, Manifest


def iso(value: float | None) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc).isoformat()


def workflows(m: Manifest, limit: int = 20, status: str | None = None) -> list[dict[str, Any]]:
    """Newest first; a run pulled from a cluster names its origin (`SITE:ID`)."""
    origins = m.origins()
    rows: list[dict[str, Any]] = []
    for wf in m.list_workflows(limit, status.upper() if status else None):
        c = m.status_counts(wf.id)
        row = {"id": wf.id, "name": wf.name, "status": wf.status, "site": wf.site,
               "activities": sum(c.values()), "finished": c.get("FINISHED", 0),
               "created": iso(wf.created_at), "started": iso(wf.started_at),
               "ended": iso(wf.finished_at)}
        if wf.id in origins:
            row["origin"] = origins[wf.id]
        else:
            row["dispatcher_problem"] = _dispatcher_problem(m, wf.id)
        rows.append(row)
    return rows


def _dispatcher_problem(m: Manifest, wf_id: int) -> str | None:
    from akoflow import service

    return service.dispatcher_problem(m, m.get_workflow(wf_id, texts=False))


def status(m: Manifest, ref: str) -> dict[str, Any]:
    """`akoflow status`: counts, failures (final, and recovered by a retry), what waits, and
    whether a dispatcher is alive for it."""
    from akoflow import service

    wf = m.find_workflow(ref)
    data = service.status_report(m, wf.id)
    if m.origin_of(wf.id) is not None:
        data["dispatcher_problem"] = None  # a pulled copy: it runs (or ran) elsewhere
    return data


def describe(m: Manifest, ref: str) -> dict[str, Any]:
    wf = m.find_workflow(ref)
    acts = m.activities(wf.id)
    names = {a.id: a.name for a in acts}
    parents: dict[int, list[str]] = {}
    for child, parent in m.edges(wf.id):
        parents.setdefault(child, []).append(names[parent])
    rows = [{"name": a.name, "status": a.status, "reason": a.reason,
             "depends_on": sorted(parents.get(a.id, [])), "runtime": a.runtime,
             "image": a.image, "resources": a.resources_dict(), "attempts": a.attempts,
             "retries": a.retries, "node": a.node, "job_id": a.job_id,
             "started_at": iso(a.started_at), "finished_at": iso(a.finished_at)}
            for a in acts]
    return {"id": wf.id, "name": wf.name, "status": wf.status, "activities": rows}


def events(m: Manifest, ref: str, activity: str | None = None, status: str | None = None,
           node: str | None = None, attempt: int | None = None, since: float | None = None,
           until: float | None = None, after_id: int = 0) -> dict[str, Any]:
    """Run-log entries after `after_id` and the workflow's status (to know when to stop
    following)."""
    wf = m.find_workflow(ref)
    f = EventFilter(activity=activity, status=status, node=node, attempt=attempt,
                    since=since, until=until, after_id=after_id)
    out = [asdict(e) | {"time": iso(e.ts)} for e in m.events(wf.id, f)]
    problem = None if m.origin_of(wf.id) is not None else _dispatcher_problem(m, wf.id)
    return {"id": wf.id, "workflow_status": m.workflow_status(wf.id), "events": out,
            "dispatcher_problem": problem}


def follow_events(m: Manifest, ref: str, poll: float = 0.5, **filters: Any
                  ) -> Iterator[dict[str, Any]]:
    """`events` batches, polling until the workflow has ended and nothing new came."""
    after = 0
    while True:
        batch = events(m, ref, after_id=after, **filters)
        if batch["events"]:
            after = batch["events"][-1]["id"]
        yield batch
        if batch["dispatcher_problem"] or (
                batch["workflow_status"] in WORKFLOW_ENDED and not batch["events"]):
            return
        time.sleep(poll)


def metrics(m: Manifest, ref: str, activity: str | None = None, samples: bool = False
            ) -> list[dict[str, Any]]:
    from akoflow import query

    wf = m.find_workflow(ref)
    if samples:
        return query.as_dicts(query.metrics(wf.id, activity, manifest=m))
    return query.as_dicts([s for s in query.metric_summary(wf.id, manifest=m)
                           if activity is None or s.activity == activity])


def files(m: Manifest, ref: str, roles: str | None = None, activity: str | None = None
          ) -> list[dict[str, Any]]:
    from akoflow import query

    return query.as_dicts(query.files(m.find_workflow(ref).id, roles, activity, manifest=m))


def explain(m: Manifest, ref: str, activity: str, attempt: int | None = None
            ) -> dict[str, Any]:
    """Why an activity went to its node: the plan, and every candidate's terms."""
    from akoflow import query

    return query.placement(m.find_workflow(ref).id, activity, attempt, manifest=m)


def prov(m: Manifest, ref: str, fmt: str = "prov-json") -> str:
    from akoflow.provenance.prov import export

    return export(m, m.find_workflow(ref).id, fmt)


def lineage(m: Manifest, ref: str, file: str | None = None, activity: str | None = None,
            direction: str = "both", fmt: str = "mermaid") -> str:
    from akoflow.provenance import lineage as lin

    graph = lin.lineage(m, m.find_workflow(ref).id, file=file, activity=activity,
                        direction=direction)
    renderer = {"dot": lin.to_dot, "mermaid": lin.to_mermaid, "json": lin.to_json}[fmt]
    return renderer(graph)


# The read-only answers a cluster gives a laptop, by name (see akoflow.remote.serve).
QUERIES: dict[str, Callable[..., Any]] = {
    "workflows": workflows, "status": status, "describe": describe, "events": events,
    "metrics": metrics, "files": files, "explain": explain, "prov": prov, "lineage": lineage,
}
