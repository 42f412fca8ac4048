"""Commands that change things: validate, run, submit, dispatch, cancel, retry, import, worker."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from akoflow import service
from akoflow.cli import render
from akoflow.cli.progress import ProgressLine, print_summary


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
        render.emit_json(spec.model_dump(by_alias=True))
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
        wf = m.find_workflow(resume_id)
    elif file:
        spec = service.load_spec(file, strict=strict, site=site, params=_params(params))
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
        from akoflow.cli.commands_inspect import status_data

        render.emit_json(status_data(m, wf.id))
    elif not quiet:  # a resumed run: the workflow's own time, not this command's
        print_summary(m, wf.id, None if resume_id else time.time() - start)
    sys.exit(0 if status == "FINISHED" else 1)


SUBMIT_WAIT = 30.0  # seconds `submit` waits for the first dispatch cycle to begin


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--site", help="Site profile to run on (overrides spec.runtime).")
@click.option("--strict", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def submit(file: str, site: str | None, strict: bool, as_json: bool) -> None:
    """Register a workflow and start a detached dispatcher; prints the workflow id."""
    m = service.open_manifest()
    wf, dispatcher = service.submit(m, service.load_spec(file, strict=strict, site=site),
                                    wait=SUBMIT_WAIT)
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
    m = service.open_manifest()
    wf = m.find_workflow(workflow_id)
    report = service.dispatch(m, wf.id)
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
@click.option("--json", "as_json", is_flag=True)
def cancel(workflow_id: str, activities: tuple[str, ...], as_json: bool) -> None:
    """Cancel a workflow (or some activities): stops their jobs, marks the rest CANCELLED."""
    m = service.open_manifest()
    wf = m.find_workflow(workflow_id)
    stopped = service.cancel(m, wf.id, list(activities) or None)
    if as_json:
        render.emit_json({"id": wf.id, "stopped_jobs": stopped or 0,
                          "status": m.workflow_status(wf.id)})
    elif stopped is None:
        click.echo(f"workflow {wf.id}: already {wf.status}; nothing to cancel")
    else:
        click.echo(f"workflow {wf.id}: cancelled ({stopped} running jobs stopped)")


@click.command()
@click.argument("workflow_id")
@click.option("--activity", "activities", multiple=True, help="Retry these activities.")
@click.option("--failed", is_flag=True, help="Retry every failed/cancelled activity (default).")
@click.option("--no-start", is_flag=True, help="Only reset; do not start a dispatcher.")
@click.option("--json", "as_json", is_flag=True)
def retry(workflow_id: str, activities: tuple[str, ...], failed: bool, no_start: bool,
          as_json: bool) -> None:
    """Reset failed activities and their skipped descendants, then dispatch again."""
    m = service.open_manifest()
    wf = m.find_workflow(workflow_id)
    count, pid = service.retry_and_start(m, wf, list(activities) or None,
                                         start_dispatcher=not no_start, wait=SUBMIT_WAIT)
    if as_json:
        render.emit_json({"id": wf.id, "reset": count, "dispatcher": pid})
    else:
        click.echo(f"workflow {wf.id}: {count} activities reset"
                   + (f"; dispatcher started ({pid})" if pid else ""))


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
def import_wfformat_cmd(trace: str, output: str | None, scale: float, noop: bool,
                        name: str | None) -> None:
    """Import a WfCommons WfFormat JSON trace."""
    from akoflow.spec import dump_yaml, import_wfformat

    spec = import_wfformat(trace, scale=scale, noop=noop, name=name)
    text = dump_yaml(spec)
    if output:
        Path(output).write_text(text)
        click.echo(f"{output}: {len(spec.activities)} activities", err=True)
    else:
        click.echo(text, nl=False)


@click.command(hidden=True)
@click.argument("attempt_dir", type=click.Path(exists=True, file_okay=False))
def worker(attempt_dir: str) -> None:
    """Internal: run one attempt inside a job (reads task.sh's header, writes result.json)."""
    from akoflow.worker.main import run_worker

    sys.exit(run_worker(Path(attempt_dir).resolve()))


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        out[key] = value
    return out


COMMANDS = [validate, run, submit, dispatch, cancel, retry, import_group, worker]
