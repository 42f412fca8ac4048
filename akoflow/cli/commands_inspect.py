"""Read-only commands: list, status, describe, logs, sites."""

from __future__ import annotations

import json
from typing import Any

import click

from akoflow import query, service
from akoflow.cli import render
from akoflow.manifest import EventFilter, Manifest
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
    click.echo("  " + ", ".join(f"{s}: {n}" for s, n in sorted(data["counts"].items())))
    for f in data["failures"]:
        code = "" if f["exit_code"] is None else f" exit {f['exit_code']}"
        click.echo(f"  {render.status_text('FAILED')} {f['activity']} attempt {f['attempt']}: "
                   f"{f['reason']}{code}")
        for line in f["stderr_tail"].strip().splitlines()[-10:]:
            click.echo(f"    | {line}")
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
    acts = query.activities(wf.id, manifest=m)
    rows: list[dict[str, Any]] = [
        {"name": a.name, "status": a.status, "reason": a.reason, "depends_on": a.parents,
         "runtime": a.runtime, "image": a.image, "resources": a.resources,
         "attempts": a.attempts, "retries": a.retries, "node": a.node, "job_id": a.job_id,
         "started_at": render.iso(a.started_at), "finished_at": render.iso(a.finished_at)}
        for a in acts]
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
    for events, problem in service.follow_log(m, wf, f, follow=follow):
        for e in events:
            if as_json:
                click.echo(json.dumps(render.to_jsonable(e) | {"time": render.iso(e.ts)}))
                continue
            who = e.activity or "(workflow)"
            att = f"#{e.attempt}" if e.attempt else ""
            move = f"{e.from_status or ''}->{e.to_status}" if e.to_status else ""
            click.echo(f"{render.ts(e.ts)}  {who}{att}  {e.kind} {move}"
                       f"{'  @' + e.node if e.node else ''}"
                       f"{'  ' + e.message if e.message else ''}")
        if problem:  # nothing more will come from a workflow nobody dispatches: stop
            click.echo(f"warning: {problem}", err=True)
            if follow:
                raise SystemExit(1)


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
    import yaml

    profile = load_site(name)
    if as_json:
        render.emit_json(profile)
    else:
        click.echo(yaml.safe_dump(profile, sort_keys=False), nl=False)


COMMANDS = [list_cmd, status, describe, logs, sites]
