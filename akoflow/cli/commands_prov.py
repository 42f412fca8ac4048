"""Provenance commands: prov, lineage, crate, metrics, files, report, notify."""

from __future__ import annotations

from pathlib import Path

import click

from akoflow import service
from akoflow.cli import render, route
from akoflow.port.units import format_bytes, parse_memory

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


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_memory(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@click.argument("workflow_id")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The .crate.zip to write.")
@click.option("--license", "license_", metavar="SPDX|URL",
              help="License of the crate (default: the spec's `license`, else the site's).")
@click.option("--max-file-bytes", callback=_size, metavar="SIZE",
              help="Data files larger than this stay out (default 64Mi).")
@click.option("--max-data-bytes", callback=_size, metavar="SIZE",
              help="Data files in all (default 256Mi); the rest stay out, described.")
@click.option("--max-log-bytes", callback=_size, metavar="SIZE",
              help="Longer stdout/stderr keep their head and end (default 1Mi).")
@click.option("--site", help=SITE_HELP)
def crate(workflow_id: str, output: str, license_: str | None, max_file_bytes: int | None,
          max_data_bytes: int | None, max_log_bytes: int | None, site: str | None) -> None:
    """Workflow Run RO-Crate of a run: spec, data files, PROV, run log, task logs."""
    from dataclasses import replace

    from akoflow.provenance.crate_payload import Limits

    sizes = {"max_file_bytes": max_file_bytes, "max_data_bytes": max_data_bytes,
             "max_log_bytes": max_log_bytes}
    made = route.artifact("crate", workflow_id, site, license=license_,
                          limits={k: v for k, v in sizes.items() if v is not None})
    if made is not None:  # made on the cluster, brought here
        Path(output).write_bytes(made)
        click.echo(f"{output}: {format_bytes(len(made))}")
        return
    limits = replace(Limits(), **{k: v for k, v in sizes.items() if v is not None})
    m = service.open_manifest()
    r = service.write_crate(m, m.find_workflow(workflow_id).id, output, license=license_,
                            limits=limits)
    text = f"{r.path}: {format_bytes(r.path.stat().st_size)}, {r.files} data files inside"
    if r.left_out:
        text += (f"; {r.left_out} left out ({format_bytes(r.left_out_bytes)}; "
                 "README.md in the crate lists them)")
    if r.logs_cut:
        text += f"; {r.logs_cut} logs cut to their head and end"
    click.echo(text)


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
    # "rss from": kernel = rusage at exit (exact); sampled = seen at a sample (a peak
    # between samples of a process that was gone by the next one is missed).
    render.table(["activity", "samples", "cpu% peak", "cpu% mean", "rss peak", "rss from",
                  "wall", "cpu time"], [
        [s["activity"], s["samples"], _f(s["cpu_percent_peak"]), _f(s["cpu_percent_mean"]),
         format_bytes(s["rss_peak"]), s.get("rss_peak_source") or "-", _f(s["wall_time"], "s"),
         _f(s["cpu_time"], "s")]
        for s in records])


@click.command()
@click.argument("workflow_id")
@click.option("--generated", "roles", flag_value="generated", help="Only generated files.")
@click.option("--used", "roles", flag_value="used", help="Only used files.")
@click.option("--pre-existing", "roles", flag_value="pre-existing",
              help="Only files used that no activity of the workflow made.")
@click.option("--invalidated", "roles", flag_value="invalidated",
              help="Only files removed (deleted, or renamed away).")
@click.option("--activity", help="Only this activity's files.")
@click.option("--site", help=SITE_HELP)
@click.option("--json", "as_json", is_flag=True)
def files(workflow_id: str, roles: str | None, activity: str | None, site: str | None,
          as_json: bool) -> None:
    """Files each attempt used, generated and removed: traced system calls where strace
    works (exact), else snapshots (marked `?` where they cannot tell)."""
    records = route.ask("files", workflow_id, site, roles=roles, activity=activity)
    if as_json:
        render.emit_json(records)
        return
    render.table(["activity", "attempt", "role", "size", "seen by", "path"], [
        [r["activity"], r["attempt"], r["role"] + ("?" if r.get("ambiguous") else ""),
         format_bytes(r["size"]), r.get("observed", "snapshot"), r["path"]] for r in records])
    if any(r.get("ambiguous") for r in records):
        click.echo("?: ambiguous: snapshots cannot see reads, nor tell apart tasks that ran "
                   "at once in one directory", err=True)


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
    """The report a cluster makes and sends back, or that is made here from the manifest."""
    data = route.artifact(op, workflow_id, site)
    if data is not None:
        out = Path(output)
        out.write_bytes(data)
        return out
    from akoflow.provenance.report import write_report

    m = service.open_manifest()
    return Path(write_report(m, m.find_workflow(workflow_id).id, Path(output)))


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
