"""`akoflow simulate` and `akoflow nodes` through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from akoflow.cli.commands_sched import nodes, simulate

NODES4 = Path(__file__).resolve().parents[2] / "benchmarks" / "nodes4.yaml"
SPEC = """\
name: tiny
spec:
  runtime: local
  alpha: 0.5
  activities:
    - name: a
      run: "true"
      cpuLimit: 1
      memoryLimit: 1Gi
      estimate: 10s
    - name: b
      run: "true"
      dependsOn: [a]
      timeLimit: 20s
"""


def test_simulate_a_spec_text_and_json(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(SPEC)
    r = CliRunner().invoke(simulate, [str(wf), "--nodes", str(NODES4), "--alpha", "0"])
    assert r.exit_code == 0, r.output
    assert "makespan      18.8 s" in r.output  # 30 s of work at speed 1.6 on `compute`
    r = CliRunner().invoke(simulate, [str(wf), "--nodes", str(NODES4), "--policy",
                                      "first-fit", "--json"])
    data = json.loads(r.output)
    assert data["policy"] == "first-fit" and data["makespan"] == 30.0  # `general`, speed 1
    assert data["activities"] == 2 and data["tasks"] == 2
    r = CliRunner().invoke(simulate, [str(wf), "--nodes", str(NODES4), "--policy", "heft"])
    assert r.exit_code == 0 and "policy heft" in r.output


def test_simulate_errors_are_one_line(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(SPEC)
    bad = tmp_path / "nodes.yaml"
    bad.write_text("nodes: [{name: x}]\n")
    for args, words in (([str(wf), "--nodes", str(bad)], "cpus"),
                        ([str(wf), "--nodes", str(NODES4), "--policy", "zz"], "no such policy"),
                        ([str(tmp_path / "none.json"), "--nodes", str(NODES4)], "cannot read")):
        r = CliRunner().invoke(simulate, args)
        assert r.exit_code == 1 and words in r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_nodes_of_the_local_site() -> None:
    r = CliRunner().invoke(nodes, ["--site", "local", "--json"])
    assert r.exit_code == 0, r.output
    [n] = json.loads(r.output)
    assert n["cpus"] >= 1 and n["memory"] > 0
    r = CliRunner().invoke(nodes, ["--site", "local"])
    assert r.exit_code == 0 and "CPUS FREE/TOTAL" in r.output
