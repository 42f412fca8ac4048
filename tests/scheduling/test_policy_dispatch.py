"""Policies named by `spec.schedule` are what the dispatcher really uses: a `module:function`
plugin places activities (its scores land on the attempt, `explain` shows them), and a plugin
that raises stops the run with one line naming it — never a silent fallback."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ak

ROOT = Path(__file__).resolve().parents[2]  # tests/ must be importable by the subprocess


def _wf(tmp_path: Path, schedule: str) -> Path:
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: pol\nspec:\n  schedule: {schedule}\n  activities:\n"
                  "    - name: a\n      run: 'true'\n")
    return wf


def test_module_function_plugin_places_and_is_explained(akhome: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT)}
    wf = _wf(tmp_path, "tests.scheduling.plugin_pkg.policies:prefer_last")
    ak("run", str(wf), home=akhome, env=env, check=True)
    why = json.loads(ak("explain", "1", "a", "--json", home=akhome, env=env,
                        check=True).stdout)
    assert why["policy"] == "tests.scheduling.plugin_pkg.policies:prefer_last"
    assert why["node"] in why["scores"] and why["scores"][why["node"]] is not None


def test_raising_plugin_is_reported_by_name(akhome: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT)}
    wf = _wf(tmp_path, "tests.scheduling.plugin_pkg.policies:explodes")
    proc = ak("run", str(wf), home=akhome, env=env)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "tests.scheduling.plugin_pkg.policies:explodes" in errors[0]
    assert "boom" in errors[0]
    assert "Traceback" not in proc.stderr


def test_unimportable_plugin_is_refused_before_anything_runs(akhome: Path,
                                                             tmp_path: Path) -> None:
    proc = ak("run", str(_wf(tmp_path, "nosuch.module:fn")), home=akhome)
    assert proc.returncode == 2
    assert "nosuch.module:fn" in proc.stderr and "cannot import" in proc.stderr
    assert json.loads(ak("list", "--json", home=akhome, check=True).stdout) == []
