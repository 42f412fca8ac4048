"""The directory a command starts in: a folder named `akoflow` there (a source checkout, with a
regular install) must not replace the installed package in the processes akoflow starts, and
a relative $AKOFLOW_HOME or ./site-configs must mean the same in them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from akoflow.cli.main import pin_paths
from akoflow.dispatch.chain import dispatcher_argv
from akoflow.port import akoflow_argv
from tests.conftest import EXAMPLES

SHADOW = "raise ImportError('the akoflow folder of the working directory was imported')\n"


def _akoflow(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `akoflow` script, run in `cwd` with a relative AKOFLOW_HOME."""
    script = shutil.which("akoflow") or str(Path(sys.executable).parent / "akoflow")
    env = {**os.environ, "AKOFLOW_HOME": "home", "AKOFLOW_SAMPLE_INTERVAL": "0.2"}
    return subprocess.run([script, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -P needs Python 3.11")
def test_a_folder_named_akoflow_does_not_shadow_the_package(tmp_path: Path) -> None:
    (tmp_path / "akoflow").mkdir()
    (tmp_path / "akoflow" / "__init__.py").write_text(SHADOW)
    (tmp_path / "akoflow" / "__main__.py").write_text(SHADOW)
    shutil.copy(EXAMPLES / "diamond.yaml", tmp_path / "wf.yaml")
    out = _akoflow(tmp_path, "submit", "wf.yaml", "--json")
    assert out.returncode == 0, out.stderr
    deadline = time.time() + 60
    while time.time() < deadline:  # the detached dispatcher (python -m akoflow) runs it
        st = json.loads(_akoflow(tmp_path, "status", "1", "--json").stdout)
        if st["status"] != "RUNNING" and st["status"] != "PENDING":
            break
        time.sleep(0.3)
    log = (Path(st["run_dir"]) / "dispatcher.log").read_text()
    assert st["status"] == "FINISHED", log
    assert Path(st["run_dir"]).is_relative_to(tmp_path / "home")  # the relative home, pinned


def test_every_python_we_start_leaves_the_working_directory_off_its_path() -> None:
    """Detached dispatchers, dispatcher jobs and workers all start from akoflow_argv."""
    safe = ["-P"] if sys.version_info >= (3, 11) else []
    assert akoflow_argv() == [sys.executable, *safe, "-m", "akoflow"]
    assert dispatcher_argv(3) == [sys.executable, *safe, "-m", "akoflow", "dispatch", "3"]
    # a site's own interpreter may be older than 3.11: it gets the plain form
    assert akoflow_argv("/opt/py/bin/python") == ["/opt/py/bin/python", "-m", "akoflow"]


def test_pin_paths_makes_the_start_directory_explicit(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "site-configs").mkdir()
    env = {"AKOFLOW_HOME": "h", "AKOFLOW_SITES": f"mine{os.pathsep}/abs"}
    pin_paths(env)
    assert env["AKOFLOW_HOME"] == str(tmp_path / "h")
    # ./site-configs first: $AKOFLOW_SITES entries still win over it, as they do here
    assert env["AKOFLOW_SITES"].split(os.pathsep) == [
        str(tmp_path / "site-configs"), str(tmp_path / "mine"), "/abs"]
    pin_paths(env)  # idempotent: a command started by a command changes nothing
    assert env["AKOFLOW_SITES"].split(os.pathsep) == [
        str(tmp_path / "site-configs"), str(tmp_path / "mine"), "/abs"]
    empty: dict[str, str] = {}
    (tmp_path / "site-configs").rmdir()
    pin_paths(empty)
    assert empty == {}
