"""Helpers shared by the benchmark scripts (not a test: these print figures)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from akoflow.port import akoflow_argv

ROOT = Path(__file__).resolve().parent.parent
# The WfCommons traces: ../shared/data/wfcommons beside the repository, as CI lays it out,
# or wherever $AKOFLOW_WFCOMMONS says.
TRACES = Path(os.environ.get("AKOFLOW_WFCOMMONS")
              or ROOT.parent / "shared" / "data" / "wfcommons")


def trace(name: str) -> Path:
    """A WfCommons trace by file name; a clear exit when the traces are not where we look."""
    path = TRACES / name
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: set AKOFLOW_WFCOMMONS to the folder of the "
                         "WfCommons traces (../shared/data/wfcommons in the project layout)")
    return path


def fresh_home(tag: str) -> Path:
    """A new AKOFLOW_HOME under the user's home directory (where ~/.akoflow would live)."""
    base = Path(os.environ.get("AKOFLOW_BENCH_DIR", Path.home() / ".cache" / "akoflow-bench"))
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=base))


def akoflow(*args: str, home: Path, python: str | None = None) -> float:
    """Wall seconds of one `akoflow ARGS` process, as a user would type it; `python` runs
    another interpreter's akoflow (an install of an earlier version, for a baseline)."""
    env = {**os.environ, "AKOFLOW_HOME": str(home)}
    argv = akoflow_argv() if python is None else [python, "-P", "-m", "akoflow"]
    start = time.perf_counter()
    proc = subprocess.run([*argv, *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"akoflow {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def median_of(n: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(n))


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def figure(name: str, value: float, unit: str = "s") -> None:
    print(f"{name} {value:.3f} {unit}", flush=True)


def precompile() -> None:
    """Byte-compile akoflow as `pip install .` does, so runs measure akoflow rather than
    CPython compiling its sources (an editable install under PYTHONDONTWRITEBYTECODE=1,
    as on the test machine, would recompile them in every process)."""
    import compileall

    import akoflow

    for pkg in (Path(akoflow.__file__).parent, Path(akoflow.__file__).parent.parent / "executors"):
        if pkg.is_dir():
            compileall.compile_dir(str(pkg), quiet=1)
