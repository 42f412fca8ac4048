"""AkôScore's plan on generated workflows it was never tuned on (seeds 5000.., apart from the
benchmark's tuning seeds 0.. and evaluation seeds 1000..): alpha 0 is as fast as HEFT, alpha
walks a Pareto front, the default is not beaten on both goals by first fit or HEFT, and a
followed plan never starts an activity later than planned."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from akoflow.scheduling.front import Front, build_front, pareto
from akoflow.scheduling.heft import heft
from akoflow.scheduling.history import RunHistory
from akoflow.scheduling.inventory import load_nodes_file
from akoflow.scheduling.plan import Plan
from akoflow.scheduling.simulator import run_plan, simulate
from akoflow.scheduling.workload import Workload

pytest.importorskip("wfcommons", reason="wfcommons needs Python 3.11+ (extra `bench`)")
import itertools

from akoflow.scheduling.synthetic import generate

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
NODE_SETS = ["nodes4.yaml", "nodes_bigmem1.yaml", "nodes_speedskew.yaml"]
CASES = [("montage", 90, 5001), ("epigenomics", 60, 5002), ("1000genome", 70, 5003),
         ("soykb", 100, 5004), ("cycles", 80, 5005), ("seismology", 110, 5006),
         ("blast", 50, 5007), ("bwa", 110, 5008), ("srasearch", 40, 5009),
         ("rnaseq", 66, 5010)]
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _history(wl: Workload) -> RunHistory:
    return RunHistory.from_runtimes((t.name, t.runtime) for t in wl.tasks)


@pytest.mark.parametrize(("recipe", "size", "seed"), CASES)
def test_alpha_walks_a_front_that_starts_at_heft(recipe: str, size: int, seed: int) -> None:
    wl = generate(recipe, size, seed)
    for name in NODE_SETS:
        nodes = load_nodes_file(BENCH / name)
        hist = _history(wl)
        front = build_front(wl, nodes, hist)
        runs = [simulate(wl, nodes, "akoscore", a, hist, plan=front.choose(a)) for a in ALPHAS]
        for a, r in zip(ALPHAS, runs):  # what was planned is what runs
            assert r.makespan == pytest.approx(front.choose(a).makespan, abs=1e-6)
            assert r.memory_waste_gbh == pytest.approx(front.choose(a).waste_gbh, abs=1e-9)
        hf = heft(wl, nodes)
        assert runs[0].makespan <= 1.03 * hf.makespan + 1e-9, (name, runs[0].plan)
        for lo, hi in itertools.pairwise(runs):
            assert hi.memory_waste_gbh <= lo.memory_waste_gbh + 1e-9, name
            assert hi.makespan >= lo.makespan - 1e-9, name
        mid = runs[2]
        for other in (hf, simulate(wl, nodes, "first-fit", history=hist)):
            assert not (other.makespan < 0.98 * mid.makespan
                        and other.memory_waste_gbh < 0.98 * mid.memory_waste_gbh), name


def test_a_followed_plan_starts_nothing_later_than_planned() -> None:
    wl = generate("montage", 120, 5011)
    hist = _history(wl)
    for name in NODE_SETS:
        nodes = load_nodes_file(BENCH / name)
        for slack in (0.0, 0.3, 3.0):
            planned = heft(wl, nodes, slack)
            plan = Plan("p", None, 0.0, planned.makespan, planned.memory_waste_gbh,
                        {r.task: r.node for r in planned.runs},
                        {r.task: r.start for r in planned.runs})
            ran = {r.task: r for r in run_plan(wl, nodes, plan, hist).runs}
            for r in planned.runs:
                assert ran[r.task].node == r.node
                assert ran[r.task].start <= r.start + 1e-6, (name, slack, r.task)


def _p(label: str, m: float, w: float) -> Plan:
    return Plan(label, "akoscore", 0.0, m, w)


def test_choose_is_monotone_on_random_fronts() -> None:
    rng = random.Random(5012)
    for _ in range(300):
        pts = [_p(f"p{i}", rng.uniform(1, 100), rng.uniform(0, 10))
               for i in range(rng.randint(1, 9))]
        front = Front(pareto(pts), tuple(pts))
        chosen = [front.choose(a / 20) for a in range(21)]
        for lo, hi in itertools.pairwise(chosen):
            assert hi.waste_gbh <= lo.waste_gbh and hi.makespan >= lo.makespan
        assert chosen[0].makespan == min(p.makespan for p in pts)
        assert chosen[-1].waste_gbh == min(p.waste_gbh for p in pts)


def test_pareto_drops_dominated_points_and_keeps_ties_once() -> None:
    pts = [_p("a", 10, 5), _p("b", 12, 5), _p("c", 10, 5), _p("d", 20, 1), _p("e", 15, 3)]
    assert [p.label for p in pareto(pts)] == ["a", "e", "d"]


def test_plan_round_trips_through_json() -> None:
    plan = Plan("heft-mem0.3", None, 0.5, 12.5, 0.25, {"a": "n1"}, {"a": 0.0}, {"a": 3.0},
                (("heft", 10.0, 0.5), ("heft-mem0.3", 12.5, 0.25)))
    assert Plan.from_json(plan.to_json()) == plan


def test_follower_keeps_node_order_until_a_task_is_late() -> None:
    plan = Plan("p", None, 0.5, 30.0, 0.0, {"a": "n", "b": "n", "c": "n"},
                {"a": 0.0, "b": 10.0, "c": 10.0})
    f = plan.follower(["a", "b", "c"], clock=0.0, grace=0.0)
    assert f.may_start("a") and not f.may_start("b")
    f.started("a")
    assert f.may_start("c") and f.may_start("b")  # planned for the same moment: any order
    late = plan.follower(["a", "b", "c"], clock=5.0, grace=0.0)  # a is past 1.25 x 0 + 0
    assert late.planned("a") is None and late.may_start("b")
