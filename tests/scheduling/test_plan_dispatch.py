"""The dispatcher plans a workflow once, follows the plan, and `explain` shows why: a real
`akoflow run` on a local site that declares two nodes (a fast fat one and a slow lean one)."""

from __future__ import annotations

import json
from pathlib import Path

from akoflow.scheduling.plan import Plan
from tests.conftest import ak

SITE = """\
name: two
extends: local
nodes:
  - {name: fast, cpus: 2, memory: 8Gi, speed: 2.0}
  - {name: lean, cpus: 2, memory: 2Gi, speed: 1.0}
"""


def _run(tmp_path: Path, akhome: Path, alpha: float) -> tuple[dict[str, str], Plan]:
    sites = tmp_path / "sites"
    sites.mkdir(exist_ok=True)
    (sites / "two.yaml").write_text(SITE)
    acts = "\n".join(
        f"    - {{name: {n}, run: 'true', estimate: {e}s, memoryLimit: 1Gi"
        + (f", dependsOn: [{d}]" if d else "") + "}"
        for n, e, d in (("a", 20, ""), ("b", 10, "a"), ("c", 30, "a"), ("e", 30, "a"),
                        ("d", 5, "b, c, e")))
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: planned\nspec:\n  runtime: two\n  alpha: {alpha}\n"
                  f"  activities:\n{acts}\n")
    env = {"AKOFLOW_SITES": str(sites)}
    ak("run", str(wf), home=akhome, env=env, check=True)
    st = json.loads(ak("status", "1", "--json", home=akhome, env=env, check=True).stdout)
    [path] = Path(st["run_dir"]).glob("placement-plan.*.json")
    picked = {}
    for name in "abced":
        why = json.loads(ak("explain", "1", name, "--json", home=akhome, env=env,
                            check=True).stdout)
        picked[name] = why["node"]
        assert why["policy"] == "akoscore" and why["rank"] is not None
        for cand in why["candidates"]:
            assert 0.0 <= cand["speed"] <= 1.0 and 0.0 <= cand["memory"] <= 1.0
    return picked, Plan.from_json(path.read_text())


def test_an_offline_plan_is_followed_and_explained(tmp_path: Path, akhome: Path) -> None:
    picked, plan = _run(tmp_path, akhome, 1.0)
    # Estimates, not history, feed the plan of a first run: alpha 1 is the least waste.
    assert plan.waste_gbh == min(w for _, _, w in plan.front)
    assert plan.offline and picked == dict(plan.node_of)  # HEFT's leanest variant, followed
    text = ak("explain", "1", "c", home=akhome,
              env={"AKOFLOW_SITES": str(tmp_path / "sites")}, check=True).stdout
    assert "SPEED PART" in text and "MEMORY PART" in text and "upward rank" in text
    assert f"plan {plan.label}" in text and "<- chosen" in text


def test_alpha_zero_plans_for_speed(tmp_path: Path, akhome: Path) -> None:
    picked, plan = _run(tmp_path, akhome, 0.0)
    assert plan.makespan == min(m for _, m, _ in plan.front)
    assert picked["a"] == "fast"  # the root on the fast node: every path goes through it
