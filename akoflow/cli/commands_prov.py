"""Provenance commands: prov, lineage, crate, metrics, files, report, notify."""

from __future__ import annotations

from pathlib import Path

import click

from akoflow import service
from akoflow.cli import render, route
from akoflow.spec.units import format_bytes

SITE_HELP = "Ask this SSH site (as SITE:ID does)."


@click.command()
@click.argument("workflow_id")
@click.option("--format", "fmt", default="prov-json", show_default=True,
              type=click.Choice(["prov-json", "prov-n", "prov-xml", "rdf"]))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file.")
@click.option("--site", help=SITE_HELP)
def prov(workflow_id: str, fmt: str, output: str | None, site: str | None) -> None:
    """W3C PROV document of a run (files, attempts, agents and their relations)."""
    _out(route.ask("prov", workflow_id, site, fmt=fmt), output)


@click.command()
@click.argument("workflow_id")
@click.option("--file", "file_", help="Lineage of this file (path in the work directory).")
@click.option("--activity", help="Lineage of this activity.")
@click.option("--direction", default="both", show_default=True,
              type=click.Choice(["up", "down", "both"]))
@click.option("--format", "fmt", default="mermaid", show_default=True,
              type=click.Choice(["dot", "mermaid", "json"]))
@click.option("-o", "--output", type=click.Path(dir_okay=False))
@click.option("--site", help=SITE_HELP)
def lineage(workflow_id: str, file_: str | None, activity: str | None, direction: str,
            fmt: str, output: str | None, site: str | None) -> None:
    """Data lineage graph: tasks and files, `used` and `wasGeneratedBy` edges."""
    _out(route.ask("lineage", workflow_id, site, file=file_, activity=activity,
                   direction=direction, fmt=fmt), output)


@click.command()
@click.argument("workflow_id")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The .crate.zip to write.")
@click.option("--site", help=SITE_HELP)
def crate(workflow_id: str, output: str, site: str | None) -> None:
    """Workflow Run RO-Crate of a run: spec, PROV, run log, task logs."""
    path = _artifact("crate", workflow_id, site, output)
    click.echo(f"{path}: {path.stat().st_size} bytes")


@click.command()
@click.argument("workflow_id")
@click.option("--activity", help="Only this activity.")
@click.option("--samples", is_flag=True, help="Every psutil sample, not the summary.")
@click.option("--site", help=SITE_HELP)
@click.option("--json", "as_json", is_flag=True)
def metrics(workflow_id: str, activity: str | None, samples: bool, site: str | None,
            as_json: bool) -> None:
    """Resource use: per-activity peak/mean cpu and memory and wall time, or the samples."""
    records = route.ask("metrics", workflow_id, site, activity=activity, samples=samples)
    if as_json:
        render.emit_json(records)
        return
    if samples:
        render.table(["activity", "attempt", "time", "cpu%", "rss", "threads", "procs"], [
            [r["activity"], r["attempt"], render.ts(r["ts"]), f"{r['cpu_percent']:.1f}",
             format_bytes(r["rss"]), r["threads"], r["processes"]] for r in records])
        return
    render.table(["activity", "samples", "cpu% peak", "cpu% mean", "rss peak", "wall",
                  "cpu time"], [
        [s["activity"], s["samples"], _f(s["cpu_percent_peak"]), _f(s["cpu_percent_mean"]),
         format_bytes(s["rss_peak"]), _f(s["wall_time"], "s"), _f(s["cpu_time"], "s")]
        for s in records])


@click.command()
@click.argument("workflow_id")
@click.option("--generated", "roles", flag_value="generated", help="Only generated files.")
@click.option("--used", "roles", flag_value="used", help="Only used files.")
@click.option("--pre-existing", "roles", flag_value="pre-existing")
@click.option("--activity", help="Only this activity's files.")
@click.option("--site", help=SITE_HELP)
@click.option("--json", "as_json", is_flag=True)
def files(workflow_id: str, roles: str | None, activity: str | None, site: str | None,
          as_json: bool) -> None:
    """Files each attempt used and generated (from the before/after snapshots)."""
    records = route.ask("files", workflow_id, site, roles=roles, activity=activity)
    if as_json:
        render.emit_json(records)
        return
    render.table(["activity", "attempt", "role", "size", "path"], [
        [r["activity"], r["attempt"], r["role"], format_bytes(r["size"]), r["path"]]
        for r in records])


@click.command()
@click.argument("workflow_id")
@click.option("-o", "--output", default="report.html", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--site", help=SITE_HELP)
def report(workflow_id: str, output: str, site: str | None) -> None:
    """One self-contained HTML report of a run (summary, DAG, timeline, resources)."""
    path = _artifact("report", workflow_id, site, output)
    click.echo(f"{path}: {path.stat().st_size} bytes")


def _artifact(op: str, workflow_id: str, site: str | None, output: str) -> Path:
    """A file a cluster makes and sends back, or that is made here from the manifest."""
    data = route.artifact(op, workflow_id, site)
    if data is not None:
        out = Path(output)
        out.write_bytes(data)
        return out
    from akoflow.provenance.crate import write_crate
    from akoflow.provenance.report import write_report

    m = service.open_manifest()
    writer = write_crate if op == "crate" else write_report
    return Path(writer(m, m.find_workflow(workflow_id).id, Path(output)))


@click.command()
@click.argument("workflow_id", required=False)
@click.option("--budget", default=30.0, show_default=True, help="Seconds to spend at most.")
@click.option("--json", "as_json", is_flag=True)
def notify(workflow_id: str | None, budget: float, as_json: bool) -> None:
    """Deliver pending webhooks now (e.g. from a login node when compute nodes are offline)."""
    from akoflow.events import deliver

    m = service.open_manifest()
    wf_id = m.find_workflow(workflow_id).id if workflow_id else None
    sent = deliver(m, wf_id, budget)
    pending = len(m.due_outbox(wf_id, float("inf"), 100_000))
    if as_json:
        render.emit_json({"delivered": sent, "pending": pending})
    else:
        click.echo(f"{sent} delivered, {pending} pending")


def _f(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:.2f}{unit}"


def _out(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text)
        click.echo(f"{output}: {len(text)} characters", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


COMMANDS = [prov, lineage, crate, metrics, files, report, notify]
