"""Where akoflow keeps its state and how it starts itself: what the core, the worker and
adapters (the local launcher's traces, a batch job's `akoflow worker` line, the batch job a
pilot or a dispatcher runs in) all need."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def akoflow_home() -> Path:
    """`$AKOFLOW_HOME`, default `~/.akoflow`."""
    env = os.environ.get("AKOFLOW_HOME")
    return Path(env).expanduser() if env else Path.home() / ".akoflow"


def akoflow_argv(python: str | None = None) -> list[str]:
    """`python -m akoflow`, as detached dispatchers and workers are started.

    `-m` puts the working directory first on sys.path, so a folder named `akoflow` there (a
    source checkout, with a regular install) would be imported instead of the installed
    package. `-P` (Python 3.11+) leaves it off; it is added for this interpreter, whose
    version is known, not for a site's own `python:`."""
    exe = python or sys.executable
    safe = ["-P"] if exe == sys.executable and sys.version_info >= (3, 11) else []
    return [exe, *safe, "-m", "akoflow"]


def current_job() -> str | None:
    """This process's own batch job id, when it runs inside one."""
    for var in ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "FLUX_JOB_ID", "JOB_ID"):
        if os.environ.get(var):
            return os.environ[var]
    return None
