"""Commands that change things: validate, run, submit, dispatch, cancel, retry, import, worker."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from akoflow import service
from akoflow.cli import render
from akoflow.cli.progress import ProgressLine, print_summary
from akoflow.port import WorkflowStatus

if TYPE_CHECKING:
    from akoflow.spec import WorkflowSpec


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Unknown keys are errors, not warnings.")
@click.option("--json", "as_json", is_flag=True, help="Print the parsed workflow as JSON.")
def validate(file: str, strict: bool, as_json: bool) -> None:
    """Check a workflow file; exit 2 with one line per problem."""
    spec = service.load_spec(file, strict=strict)
    for warning in service.site_warnings(spec):
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        from akoflow.spec.secrets import redact_data

        render.emit_json(redact_data(spec.model_dump(by_alias=True)))
        return
    deps = sum(len(a.depends_on) for a in spec.activities)
    click.echo(f"{file}: workflow {spec.name!r} is valid: {len(spec.activities)} activities, "
               f"{deps} dependencies, runtime {spec.runtime}")


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--site", help="Site profile to run on (overrides spec.runtime).")
@click.option("--resume", "resume_id", metavar="ID", help="Continue an existing workflow.")
@click.option("--strict", is_flag=True)
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Parameter of a Python workflow (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress line or summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON.")
def run(file: str | None, site: str | None, resume_id: str | None, strict: bool,
        params: tuple[str, ...], quiet: bool, as_json: bool) -> None:
    """Run a workflow in the foreground until it ends (exit 0 only if all finished)."""
    m = service.open_manifest()
    if resume_id:
        wf = service.controllable(m, resume_id)
    elif file:
        spec = service.load_spec(file, strict=strict, site=site, params=_params(params))
        if _remote_site(spec.runtime):
            raise click.UsageError(f"site {spec.runtime} is reached over SSH: use `akoflow "
                                   f"submit {file} --site {spec.runtime}`")
        wf = service.register(m, spec)
        if not quiet and not as_json:
            click.echo(f"workflow {wf.id} ({wf.name}): {wf.run_dir}", err=True)
    else:
        raise click.UsageError("give a workflow FILE or --resume ID")
    progress = None if (quiet or as_json) else ProgressLine(m, wf.id)
    start = time.time()
    try:
        status = service.run(m, wf.id, progress)
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        click.echo(f"error: interrupted; started tasks run on: continue with "
                   f"`akoflow run --resume {wf.id}`, or stop them with `akoflow cancel {wf.id}`",
                   err=True)
        sys.exit(130)
    if progress is not None:
        progress.close()
    if as_json:
        from akoflow import views

        render.emit_json(views.status(m, str(wf.id)))
    elif not quiet:  # a resumed run: the workflow's own time, not this command's
        print_summary(m, wf.id, None if resume_id else time.time() - start)
    sys.exit(0 if status == WorkflowStatus.FINISHED.value else 1)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--site", help="Site profile to run on (overrides spec.runtime); a site with "
              "an `ssh:` block is submitted to its cluster and printed as SITE:ID.")
@click.option("--upload", "uploads", multiple=True, type=click.Path(exists=True),
              metavar="PATH", help="SSH sites: also upload this file or directory into the "
              "work directory (repeatable; the spec's `inputs:` always go).")
@click.option("--strict", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def submit(file: str, site: str | None, uploads: tuple[str, ...], strict: bool,
           as_json: bool) -> None:
    """Register a workflow and start a detached dispatcher; prints the workflow id."""
    spec = service.load_spec(file, strict=strict, site=site)
    if _remote_site(spec.runtime):
        from akoflow.remote.submit import submit as remote_submit

        data = remote_submit(spec.runtime, spec, list(uploads), strict)
        if as_json:
            render.emit_json(data)
        else:
            click.echo(data["ref"])
        return
    if uploads:
        raise click.UsageError("--upload is for sites reached over SSH")
    m = service.open_manifest()
    wf, dispatcher = service.submit(m, spec, wait=service.FIRST_CYCLE_WAIT)
    if as_json:
        render.emit_json({"id": wf.id, "name": wf.name, "run_dir": wf.run_dir,
                          "dispatcher": dispatcher})
    else:
        click.echo(wf.id)


@click.command()
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True)
def dispatch(workflow_id: str, as_json: bool) -> None:
    """Run exactly one dispatch cycle (what a dispatcher batch job does)."""
    wf, report = service.dispatch(service.open_manifest(), workflow_id)
    if as_json:
        render.emit_json({"id": wf.id, "acted": report is not None,
                          "report": report})
    elif report is None:
        click.echo(f"workflow {wf.id}: another dispatcher is active", err=True)
    else:
        click.echo(f"workflow {wf.id}: {len(report.completions)} completed, "
                   f"{report.submitted} submitted, {report.live} live, "
                   f"status {report.workflow_status}")


@click.command()
@click.argument("workflow_id")
@click.option("--activity", "activities", multiple=True, help="Only these activities.")
@click.option("--site", help="Ask this SSH site (as SITE:ID does).")
@click.option("--json", "as_json", is_flag=True)
def cancel(workflow_id: str, activities: tuple[str, ...], site: str | None,
           as_json: bool) -> None:
    """Cancel a workflow (or some activities): stops their jobs, marks the rest CANCELLED."""
    from akoflow.cli import route

    data = route.act("cancel", workflow_id, site, names=list(activities) or None)
    if as_json:
        render.emit_json({k: data[k] for k in ("id", "stopped_jobs", "status")})
    elif data["over"]:
        click.echo(f"workflow {data['id']}: already {data['was']}; nothing to cancel")
    else:
        click.echo(f"workflow {data['id']}: cancelled ({data['stopped_jobs']} running jobs "
                   "stopped)")


@click.command()
@click.argument("workflow_id")
@click.option("--activity", "activities", multiple=True, help="Retry these activities.")
@click.option("--failed", is_flag=True, help="Retry every failed/cancelled activity (default).")
@click.option("--no-start", is_flag=True, help="Only reset; do not start a dispatcher.")
@click.option("--site", help="Ask this SSH site (as SITE:ID does).")
@click.option("--json", "as_json", is_flag=True)
def retry(workflow_id: str, activities: tuple[str, ...], failed: bool, no_start: bool,
          site: str | None, as_json: bool) -> None:
    """Reset failed activities and their skipped descendants, then dispatch again."""
    from akoflow.cli import route

    data = route.act("retry", workflow_id, site, names=list(activities) or None,
                     start_dispatcher=not no_start)
    if as_json:
        render.emit_json(data)
    else:
        click.echo(f"workflow {data['id']}: {data['reset']} activities reset"
                   + (f"; dispatcher started ({data['dispatcher']})" if data["dispatcher"]
                      else ""))


@click.group(name="import")
def import_group() -> None:
    """Turn other workflow formats into AkôFlow YAML."""


@import_group.command(name="wfformat")
@click.argument("trace", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write YAML here.")
@click.option("--scale", default=0.001, show_default=True,
              help="Multiply trace runtimes by this for the generated sleeps.")
@click.option("--noop", is_flag=True, help="Activities run `true` instead of sleeping.")
@click.option("--name", help="Workflow name (default: from the trace).")
@click.option("--data", type=click.Path(file_okay=False), metavar="DIR",
              help="Create the trace's workflow inputs in DIR and run in DIR (its work "
                   "directory), so every task reads and writes its files as recorded.")
def import_wfformat_cmd(trace: str, output: str | None, scale: float, noop: bool,
                        name: str | None, data: str | None) -> None:
    """Import a WfCommons WfFormat JSON trace: each task reads its input files, sleeps its
    scaled runtime and writes its output files."""
    from akoflow.spec import import_wfformat

    spec = import_wfformat(trace, scale=scale, noop=noop, name=name, data=data)
    _emit(spec, output)


def _emit(spec: WorkflowSpec, output: str | None) -> None:
    """An imported workflow as AkôFlow YAML: into `output`, or on stdout."""
    from akoflow.spec import dump_yaml

    text = dump_yaml(spec)
    if output:
        Path(output).write_text(text)
        click.echo(f"{output}: {len(spec.activities)} activities", err=True)
    else:
        click.echo(text, nl=False)


@import_group.command(name="pegasus")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write YAML here.")
@click.option("--strict", is_flag=True, help="Warnings (ignored profiles...) are errors.")
def import_pegasus_cmd(file: str, output: str | None, strict: bool) -> None:
    """Import a Pegasus WMS 5 YAML workflow (checked against Pegasus's schema)."""
    from akoflow.spec.pegasus import import_pegasus

    spec = import_pegasus(file, strict=strict)
    _emit(spec, output)


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write it here.")
def schema(output: str | None) -> None:
    """Print the JSON Schema of workflow files (for YAML editors)."""
    import json

    from akoflow.spec.schema import workflow_schema

    text = json.dumps(workflow_schema(), indent=2, ensure_ascii=False) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@click.command(hidden=True)
@click.argument("attempt_dir", type=click.Path(exists=True, file_okay=False))
def worker(attempt_dir: str) -> None:
    """Internal: run one attempt inside a job (reads task.sh's header, writes result.json)."""
    from akoflow.worker.main import run_worker

    sys.exit(run_worker(Path(attempt_dir).resolve()))


@click.command(hidden=True)
@click.option("--run-dir", required=True, type=click.Path(file_okay=False))
@click.option("--site", required=True)
@click.option("--index", default=0, type=int, help="This node's place in the allocation.")
@click.option("--started", type=float, help="When the allocation started (epoch seconds).")
@click.option("--parent", type=int, help="End with this process (the dispatcher).")
@click.option("--spawn", is_flag=True, help="Start the agents of the other nodes too.")
@click.option("--lead", is_flag=True, help="The dispatcher's own allocation: never idle out.")
def pilot(run_dir: str, site: str, index: int, started: float | None, parent: int | None,
          spawn: bool, lead: bool) -> None:
    """Internal: a pilot's agent inside an allocation (runs the workflow's packed tasks)."""
    sys.exit(service.serve_pilot(Path(run_dir).resolve(), site, index=index,
                                 started=started, parent=parent, spawn=spawn, lead=lead))


def _remote_site(site: str) -> bool:
    """Whether `site` names a cluster reached over SSH (its profile has an `ssh:` block)."""
    from akoflow.remote.config import is_remote

    return is_remote(site)


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        out[key] = value
    return out


COMMANDS = [validate, run, submit, dispatch, cancel, retry, import_group, schema, worker,
            pilot]
