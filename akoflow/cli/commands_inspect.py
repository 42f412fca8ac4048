"""Read-only commands: list, status, describe, logs, sites."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from akoflow import service
from akoflow.cli import render
from akoflow.manifest import WORKFLOW_ENDED, EventFilter, Manifest
from akoflow.manifest.states import LOG_FILTERS
from akoflow.sites import list_sites, load_site
from akoflow.spec.units import format_bytes


@click.command(name="list")
@click.option("--limit", default=20, show_default=True)
@click.option("--status", help="Only workflows in this status.")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(limit: int, status: str | None, as_json: bool) -> None:
    """Workflows in the manifest, newest first."""
    m = service.open_manifest()
    wfs = m.list_workflows(limit, status.upper() if status else None)
    rows: list[dict[str, Any]] = []
    for wf in wfs:
        c = m.status_counts(wf.id)
        rows.append({"id": wf.id, "name": wf.name, "status": wf.status, "site": wf.site,
                     "activities": sum(c.values()), "finished": c.get("FINISHED", 0),
                     "created": render.iso(wf.created_at),
                     "elapsed": render.duration(wf.started_at, wf.finished_at),
                     "dispatcher_problem": service.dispatcher_problem(m, wf)})
    if as_json:
        render.emit_json(rows)
        return
    render.table(["id", "name", "status", "site", "done", "created", "elapsed"], [
        [r["id"], r["name"], render.status_text(r["status"])
         + (" (no dispatcher!)" if r["dispatcher_problem"] else ""), r["site"],
         f"{r['finished']}/{r['activities']}", render.ts(wfs[i].created_at), r["elapsed"]]
        for i, r in enumerate(rows)])
    for r in rows:
        if r["dispatcher_problem"]:
            click.echo(f"warning: {r['dispatcher_problem']}", err=True)


def status_data(m: Manifest, wf_id: int) -> dict[str, Any]:
    return service.status_report(m, wf_id)


def failure_line(f: dict[str, Any]) -> str:
    """`join attempt 1: EXIT (exit 3): why`, the same wherever a failure is shown."""
    code = "" if f["exit_code"] is None else f" (exit {f['exit_code']})"
    why = f": {f['message']}" if f.get("message") else ""
    return f"{f['activity']} attempt {f['attempt']}: {f['reason'] or 'failed'}{code}{why}"


@click.command()
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True)
def status(workflow_id: str, as_json: bool) -> None:
    """Workflow state, counts per state, and failures with their stderr tails."""
    m = service.open_manifest()
    data = status_data(m, m.find_workflow(workflow_id).id)
    if as_json:
        render.emit_json(data)
        return
    wf = m.get_workflow(data["id"])
    click.echo(f"workflow {wf.id} {wf.name}: {render.status_text(wf.status)} "
               f"({render.duration(wf.started_at, wf.finished_at)})")
    click.echo(f"  site {wf.site}; run dir {wf.run_dir}")
    click.echo("  activities: " + ", ".join(f"{n} {s.lower()}"
                                           for s, n in sorted(data["counts"].items())))
    for f in data["failures"]:
        click.echo(f"  {render.status_text('FAILED')} {failure_line(f)}")
        for line in f["stderr_tail"].strip().splitlines()[-10:]:
            click.echo(f"    | {line}")
    if data["recovered"]:
        click.echo(f"  {len(data['recovered'])} failed attempts were recovered by a retry:")
        for f in data["recovered"]:
            click.echo(f"    recovered {failure_line(f)}")
    for w in data["waiting"][:20]:
        click.echo(f"  READY {w['activity']}: {w['why']}")
    if data["dispatcher_problem"]:
        click.echo(f"warning: {data['dispatcher_problem']}", err=True)


@click.command()
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True)
def describe(workflow_id: str, as_json: bool) -> None:
    """The DAG: every activity with its dependencies, resources, state and attempts."""
    m = service.open_manifest()
    wf = m.find_workflow(workflow_id)
    acts = m.activities(wf.id)
    names = {a.id: a.name for a in acts}
    parents: dict[int, list[str]] = {}
    for child, parent in m.edges(wf.id):
        parents.setdefault(child, []).append(names[parent])
    rows: list[dict[str, Any]] = []
    for a in acts:
        res = a.resources_dict()
        rows.append({"name": a.name, "status": a.status, "reason": a.reason,
                     "depends_on": sorted(parents.get(a.id, [])), "runtime": a.runtime,
                     "image": a.image, "resources": res, "attempts": a.attempts,
                     "retries": a.retries, "node": a.node, "job_id": a.job_id,
                     "started_at": render.iso(a.started_at),
                     "finished_at": render.iso(a.finished_at)})
    if as_json:
        render.emit_json({"id": wf.id, "name": wf.name, "status": wf.status,
                          "activities": rows})
        return
    click.echo(f"workflow {wf.id} {wf.name}: {render.status_text(wf.status)}, "
               f"{len(acts)} activities")
    # elapsed: from the first attempt's start to the last one's end; tries: made/allowed
    render.table(
        ["activity", "status", "depends on", "cpu", "memory", "limit", "elapsed", "tries",
         "runtime"],
        [[r["name"], render.status_text(r["status"]), ",".join(r["depends_on"]) or "-",
          f"{r['resources'].get('cpu', 1):g}", format_bytes(r["resources"].get("memory")),
          _limit(r["resources"].get("time_limit")),
          render.duration(a.started_at, a.finished_at) if a.started_at else "-",
          f"{r['attempts']}/{a.retries + 1}", r["runtime"]] for r, a in zip(rows, acts)])


def _limit(seconds: float | None) -> str:
    return "-" if not seconds else render.duration(0.0, float(seconds))


def parse_when(text: str | None) -> float | None:
    """ISO time, `HH:MM[:SS]` today, or an age such as `10m` / `2h` / `30s` ago."""
    from akoflow import query

    try:
        return query.parse_when(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("workflow_id")
@click.option("--activity", help="Only this activity.")
@click.option("--status", "status_", help="Only transitions into this state (or event kind).")
@click.option("--node", help="Only events on this node.")
@click.option("--attempt", type=int, help="Only this attempt number.")
@click.option("--since", help="From this time (ISO, HH:MM, or an age like 10m).")
@click.option("--until", help="Up to this time.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until the end.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line (JSON Lines), as --follow prints them.")
def logs(workflow_id: str, activity: str | None, status_: str | None, node: str | None,
         attempt: int | None, since: str | None, until: str | None, follow: bool,
         as_json: bool) -> None:
    """The run log: every state transition, filterable by activity, state, node and time."""
    if status_ is not None and status_.upper() not in LOG_FILTERS:
        raise click.BadParameter(f"{status_!r} is neither a state nor an event kind; one of: "
                                 f"{', '.join(LOG_FILTERS)}", param_hint="'--status'")
    m = service.open_manifest()
    wf = m.find_workflow(workflow_id)
    f = EventFilter(activity=activity, status=status_, node=node, attempt=attempt,
                    since=parse_when(since), until=parse_when(until))
    last = 0
    checked = time.monotonic()
    while True:
        events = m.events(wf.id, EventFilter(**{**f.__dict__, "after_id": last}))
        if events:
            last = events[-1].id
        if as_json:
            for e in events:
                click.echo(json.dumps(render.to_jsonable(e) | {"time": render.iso(e.ts)}))
        else:
            for e in events:
                who = e.activity or "(workflow)"
                att = f"#{e.attempt}" if e.attempt else ""
                move = f"{e.from_status or ''}->{e.to_status}" if e.to_status else ""
                click.echo(f"{render.ts(e.ts)}  {who}{att}  {e.kind} {move}"
                           f"{'  @' + e.node if e.node else ''}"
                           f"{'  ' + e.message if e.message else ''}")
        if not follow or time.monotonic() - checked > 5.0:
            # Nothing more will come from a workflow nobody dispatches: say so and stop.
            checked = time.monotonic()
            problem = service.dispatcher_problem(m, m.get_workflow(wf.id, texts=False))
            if problem:
                click.echo(f"warning: {problem}", err=True)
                if follow:
                    raise SystemExit(1)
        if not follow:
            return
        if m.get_workflow(wf.id).status in WORKFLOW_ENDED and not events:
            return
        time.sleep(0.5)


@click.group()
def sites() -> None:
    """Site profiles (packaged, ~/.config/akoflow/sites, ./site-configs)."""


@sites.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def sites_list(as_json: bool) -> None:
    profiles = list_sites()
    if as_json:
        render.emit_json(profiles)
        return
    render.table(["name", "executor", "container", "description"], [
        [p["name"], p["executor"], p.get("container", "-"), p.get("description", "")]
        for p in profiles])


@sites.command(name="show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def sites_show(name: str, as_json: bool) -> None:
    """The merged profile: every value with the file it came from (`extends` chain,
    packaged, ~/.config/akoflow/sites, ./site-configs, $AKOFLOW_SITES)."""
    import json as _json

    profile = load_site(name)
    if as_json:
        render.emit_json(profile)
        return
    sources: dict[str, str] = profile.get("_sources", {})
    rows = [(key, _json.dumps(_value_at(profile, key), default=str), src)
            for key, src in sources.items() if key != "extends"]
    width = max((len(k) + len(v) for k, v, _ in rows), default=0) + 2
    for key, value, src in rows:
        click.echo(f"{key}: {value}".ljust(width + 2) + f"# {src}")


def _value_at(profile: dict[str, Any], dotted: str) -> Any:
    value: Any = profile
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


COMMANDS = [list_cmd, status, describe, logs, sites]
