"""Read-only commands: list, status, describe, logs, sites."""

from __future__ import annotations

import json
from typing import Any

import click

from akoflow import query
from akoflow.cli import render, route
from akoflow.manifest.states import LOG_FILTERS
from akoflow.port.units import format_bytes
from akoflow.sites import list_sites, load_site, profile_sources

SITE_HELP = "Ask this SSH site (as SITE:ID does)."


@click.command(name="list")
@click.option("--limit", default=20, show_default=True)
@click.option("--status", help="Only workflows in this status.")
@click.option("--site", help=SITE_HELP)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(limit: int, status: str | None, site: str | None, as_json: bool) -> None:
    """Workflows in the manifest, newest first (pulled runs show where they came from)."""
    rows = route.ask("workflows", None, site, limit=limit, status=status)
    if as_json:
        render.emit_json(rows)
        return
    render.table(["id", "name", "status", "site", "done", "created", "elapsed"], [
        [r["id"], r["name"], render.status_text(r["status"])
         + (" (no dispatcher!)" if r.get("dispatcher_problem") else ""),
         f"{r['site']} (from {r['origin']})" if r.get("origin") else r["site"],
         f"{r['finished']}/{r['activities']}", render.ts(render.epoch(r["created"])),
         render.duration(render.epoch(r["started"]), render.epoch(r["ended"]))]
        for r in rows])
    for r in rows:
        if r.get("dispatcher_problem"):
            click.echo(f"warning: {r['dispatcher_problem']}", err=True)


@click.command()
@click.argument("workflow_id")
@click.option("--site", help=SITE_HELP)
@click.option("--json", "as_json", is_flag=True)
def status(workflow_id: str, site: str | None, as_json: bool) -> None:
    """Workflow state, counts per state, and failures with their stderr tails."""
    data = route.ask("status", workflow_id, site)
    if as_json:
        render.emit_json(data)
        return
    started, ended = render.epoch(data["started_at"]), render.epoch(data["finished_at"])
    click.echo(f"workflow {data['id']} {data['name']}: {render.status_text(data['status'])} "
               f"({render.duration(started, ended)})")
    click.echo(f"  site {data['site']}; run dir {data['run_dir']}")
    click.echo("  activities: " + ", ".join(f"{n} {s.lower()}"
                                           for s, n in sorted(data["counts"].items())))
    for f in data["failures"]:
        click.echo(f"  {render.status_text('FAILED')} {failure_line(f)}")
        for line in f["stderr_tail"].strip().splitlines()[-10:]:
            click.echo(f"    | {line}")
    if data.get("recovered"):
        click.echo(f"  {len(data['recovered'])} failed attempts were recovered by a retry:")
        for f in data["recovered"]:
            click.echo(f"    recovered {failure_line(f)}")
    for w in data["waiting"][:20]:
        click.echo(f"  READY {w['activity']}: {w['why']}")
    if data.get("dispatcher_problem"):
        click.echo(f"warning: {data['dispatcher_problem']}", err=True)


def failure_line(f: dict[str, Any]) -> str:
    """`join attempt 1: EXIT (exit 3): why`, the same wherever a failure is shown."""
    code = "" if f["exit_code"] is None else f" (exit {f['exit_code']})"
    why = f": {f['message']}" if f.get("message") else ""
    return f"{f['activity']} attempt {f['attempt']}: {f['reason'] or 'failed'}{code}{why}"


@click.command()
@click.argument("workflow_id")
@click.option("--site", help=SITE_HELP)
@click.option("--json", "as_json", is_flag=True)
def describe(workflow_id: str, site: str | None, as_json: bool) -> None:
    """The DAG: every activity with its dependencies, resources, state and attempts."""
    data = route.ask("describe", workflow_id, site)
    if as_json:
        render.emit_json(data)
        return
    rows = data["activities"]
    click.echo(f"workflow {data['id']} {data['name']}: {render.status_text(data['status'])}, "
               f"{len(rows)} activities")
    # elapsed: from the first attempt's start to the last one's end; tries: made/allowed
    render.table(
        ["activity", "status", "depends on", "cpu", "memory", "limit", "elapsed", "tries",
         "runtime"],
        [[r["name"], render.status_text(r["status"]), ",".join(r["depends_on"]) or "-",
          f"{r['resources'].get('cpu', 1):g}", format_bytes(r["resources"].get("memory")),
          _limit(r["resources"].get("time_limit")),
          render.duration(render.epoch(r["started_at"]), render.epoch(r["finished_at"]))
          if r["started_at"] else "-",
          f"{r['attempts']}/{r['retries'] + 1}", r["runtime"]] for r in rows])


def _limit(seconds: float | None) -> str:
    return "-" if not seconds else render.duration(0.0, float(seconds))


def _when(text: str | None, hint: str) -> float | None:
    """`query.parse_when`, its refusal as click's one-line usage error."""
    try:
        return query.parse_when(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


@click.command()
@click.argument("workflow_id")
@click.option("--activity", help="Only this activity.")
@click.option("--status", "status_", help="Only transitions into this state (or event kind).")
@click.option("--node", help="Only events on this node.")
@click.option("--attempt", type=int, help="Only this attempt number.")
@click.option("--since", help="From this time (ISO, HH:MM, or an age like 10m).")
@click.option("--until", help="Up to this time.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until the end.")
@click.option("--site", help=SITE_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line (JSON Lines), as --follow prints them.")
def logs(workflow_id: str, activity: str | None, status_: str | None, node: str | None,
         attempt: int | None, since: str | None, until: str | None, follow: bool,
         site: str | None, as_json: bool) -> None:
    """The run log: every state transition, filterable by activity, state, node and time."""
    if status_ is not None and status_.upper() not in LOG_FILTERS:
        raise click.BadParameter(f"{status_!r} is neither a state nor an event kind; one of: "
                                 f"{', '.join(LOG_FILTERS)}", param_hint="'--status'")
    # Ages (`10m`) are turned into times here, on the laptop's clock, before asking anyone.
    filters = {"activity": activity, "status": status_, "node": node, "attempt": attempt,
               "since": _when(since, "'--since'"), "until": _when(until, "'--until'")}
    batches = (route.follow(workflow_id, site, **filters) if follow
               else iter([route.ask("events", workflow_id, site, **filters)]))
    for batch in batches:
        for e in batch["events"]:
            if as_json:
                click.echo(json.dumps(e))
                continue
            who = e["activity"] or "(workflow)"
            att = f"#{e['attempt']}" if e["attempt"] else ""
            move = f"{e['from_status'] or ''}->{e['to_status']}" if e["to_status"] else ""
            click.echo(f"{render.ts(e['ts'])}  {who}{att}  {e['kind']} {move}"
                       f"{'  @' + e['node'] if e['node'] else ''}"
                       f"{'  ' + e['message'] if e['message'] else ''}")
        if batch.get("dispatcher_problem"):
            # Nothing more will come from a workflow nobody dispatches: say so and stop.
            click.echo(f"warning: {batch['dispatcher_problem']}", err=True)
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
    """The merged profile: every value with the file it came from (`extends` chain,
    packaged, ~/.config/akoflow/sites, ./site-configs, $AKOFLOW_SITES)."""
    import json as _json

    profile = load_site(name)
    if as_json:
        render.emit_json(profile)
        return
    rows = [(key, _json.dumps(value, default=str), src)
            for key, value, src in profile_sources(profile)]
    width = max((len(k) + len(v) for k, v, _ in rows), default=0) + 2
    for key, value, src in rows:
        click.echo(f"{key}: {value}".ljust(width + 2) + f"# {src}")



COMMANDS = [list_cmd, status, describe, logs, sites]
