"""The `akoflow` command: parse, call one service function, print. No business logic here."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import MutableMapping
from typing import NoReturn

import click

from akoflow import __version__
from akoflow.cli import (
    commands_inspect,
    commands_prov,
    commands_remote,
    commands_run,
    commands_sched,
    commands_serve,
    environment,
)
from akoflow.manifest import ManifestError
from akoflow.port import ExecutorError, akoflow_home
from akoflow.remote.config import RemoteError
from akoflow.scheduling.policies import PolicyError
from akoflow.service import StartError
from akoflow.sites import SiteError
from akoflow.spec.errors import SpecError

EXIT_SPEC = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="akoflow")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """akoflow: DAG workflows where the compute is, with provenance for every task."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


for command in (*commands_run.COMMANDS, *commands_inspect.COMMANDS, *commands_prov.COMMANDS,
                *commands_sched.COMMANDS, *commands_serve.COMMANDS,
                *commands_remote.COMMANDS):
    cli.add_command(command)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def pin_paths(environ: MutableMapping[str, str] = os.environ) -> None:
    """Make what this command's working directory means explicit in its environment: the
    processes it starts (a detached dispatcher, batch jobs, which PBS and SGE start in
    $HOME) inherit the environment, not the directory. So a relative $AKOFLOW_HOME becomes
    absolute, and ./site-configs (searched before $AKOFLOW_SITES) joins the front of it."""
    home = environ.get("AKOFLOW_HOME")
    if home:
        environ["AKOFLOW_HOME"] = os.path.abspath(os.path.expanduser(home))
    sites = [os.path.abspath(p) for p in environ.get("AKOFLOW_SITES", "").split(os.pathsep)
             if p]
    here = os.path.abspath("site-configs")
    if os.path.isdir(here) and here not in sites:
        sites.insert(0, here)
    if sites:
        environ["AKOFLOW_SITES"] = os.pathsep.join(sites)


def main() -> None:
    debug = "--debug" in sys.argv[1:] or bool(os.environ.get("AKOFLOW_DEBUG"))
    pin_paths()
    try:
        rv = cli.main(standalone_mode=False, prog_name="akoflow")
        if isinstance(rv, int):
            sys.exit(rv)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.UsageError as exc:  # one line, as for every other bad input
        where = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        _fail(f"{exc.format_message()}{where}", exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except SpecError as exc:
        if debug:
            raise
        for issue in exc.issues:
            click.echo(f"error: {issue}", err=True)
        sys.exit(EXIT_SPEC)
    except (SiteError, ManifestError, ExecutorError, StartError, RemoteError) as exc:
        if debug:
            raise
        *first, last = str(exc).splitlines() or [""]
        for line in first:  # a profile with several bad keys: one `error:` line each
            click.echo(f"error: {line}", err=True)
        _fail(last, 1)
    except PolicyError as exc:  # a placement plugin that cannot be loaded or misbehaves
        if debug:
            raise
        _fail(str(exc), EXIT_SPEC)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except OSError as exc:  # the machine's problem, not ours: name the path, say what to do
        if debug:
            raise
        _fail(environment.describe_os_error(exc), 1)
    except sqlite3.Error as exc:
        if debug:
            raise
        _fail(environment.describe_sqlite_error(exc, akoflow_home() / "manifest.db"), 1)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: one line for the user, the traceback with --debug
        if debug:
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
              70)
    sys.exit(0)
