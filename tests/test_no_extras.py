"""akoflow as `pip install akoflow` gives it: no extras. CI installs `.[dev]`, which would hide
an adapter that imports an optional package, so these tests build a second virtualenv with a
regular (non-editable) install of this checkout and drive that one's `akoflow`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT


@pytest.fixture(scope="session")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A virtualenv holding akoflow and its required dependencies only."""
    venv = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", str(ROOT)],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    yield venv


def plain(venv: Path, *args: str, home: Path, cwd: Path,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run that install's `akoflow` from a directory outside the checkout (so the checkout's
    own `akoflow/` folder cannot be imported by accident)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(AKOFLOW_HOME=str(home), AKOFLOW_SAMPLE_INTERVAL="0.2")
    return subprocess.run([str(venv / "bin" / "akoflow"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def test_the_plain_install_has_no_extras(plain_venv: Path) -> None:
    py = str(plain_venv / "bin" / "python")
    where = subprocess.run([py, "-c", "import akoflow; print(akoflow.__file__)"],
                           capture_output=True, text=True, cwd="/", check=True).stdout
    assert str(plain_venv) in where  # the installed copy, not this checkout
    for module in ("docker", "kubernetes"):
        assert subprocess.run([py, "-c", f"import {module}"], capture_output=True,
                              cwd="/").returncode != 0, f"{module} should not be installed"


def test_local_run_from_a_plain_install(plain_venv: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = plain(plain_venv, "run", str(EXAMPLES / "diamond.yaml"), home=home, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = json.loads(plain(plain_venv, "files", "1", "--json", home=home,
                             cwd=tmp_path).stdout)
    assert "all.txt" in {f["path"] for f in files}


def test_container_sites_say_what_to_install_before_registering(
        plain_venv: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    for site, extra in (("docker", "docker"), ("kubernetes", "kubernetes")):
        proc = plain(plain_venv, "run", str(EXAMPLES / "diamond.yaml"), "--site", site,
                     home=home, cwd=tmp_path)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert f"pip install 'akoflow[{extra}]'" in lines[0]
        proc = plain(plain_venv, "submit", str(EXAMPLES / "diamond.yaml"), "--site", site,
                     home=home, cwd=tmp_path)
        assert proc.returncode == 1 and f"akoflow[{extra}]" in proc.stderr
    listed = plain(plain_venv, "list", "--json", home=home, cwd=tmp_path)
    assert json.loads(listed.stdout or "[]") == []  # nothing was registered

    wf = tmp_path / "docker.yaml"
    wf.write_text("name: boxed\nspec:\n  runtime: docker\n  image: alpine\n"
                  "  activities:\n    - name: a\n      run: echo hi\n")
    proc = plain(plain_venv, "validate", str(wf), home=home, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'akoflow[docker]'" in proc.stderr and "warning:" in proc.stderr


@pytest.mark.infra
def test_slurm_submit_from_a_plain_install(plain_venv: Path, slurm_cluster: object,
                                           tmp_path: Path) -> None:
    """Dispatcher jobs, guard jobs and task jobs all run this install's python; activity
    names as AkôFlow writes them (spaces, quotes) become safe job names."""
    home = tmp_path / "home"
    wf = tmp_path / "names.yaml"
    wf.write_text(
        "name: Hello World\nspec:\n  runtime: slurm\n  activities:\n"
        "    - name: Echo Hello World\n      run: echo hello > hello.txt\n"
        "    - name: \"it's $(shown)\"\n      run: cat hello.txt > copy.txt\n"
        "      dependsOn: [Echo Hello World]\n")
    proc = plain(plain_venv, "submit", str(wf), home=home, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deadline = time.time() + 240
    status: dict[str, object] = {}
    while time.time() < deadline:
        out = plain(plain_venv, "status", "1", "--json", home=home, cwd=tmp_path)
        status = json.loads(out.stdout) if out.returncode == 0 else {}
        if status.get("status") in ("FINISHED", "FAILED", "CANCELLED"):
            break
        time.sleep(2)
    assert status.get("status") == "FINISHED", status
    assert status.get("counts") == {"FINISHED": 2}
    desc = json.loads(plain(plain_venv, "describe", "1", "--json", home=home,
                            cwd=tmp_path).stdout)
    assert [a["name"] for a in desc["activities"]] == ["Echo Hello World", "it's $(shown)"]
