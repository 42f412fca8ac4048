"""The simulator and HEFT: exact figures on a hand-checkable DAG, and a real trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from akoflow.port import Node
from akoflow.scheduling.heft import heft
from akoflow.scheduling.inventory import load_nodes_file
from akoflow.scheduling.simulator import SimulationError, simulate
from akoflow.scheduling.workload import SimTask, Workload, from_trace
from tests.conftest import WFCOMMONS, shared_file

GB = 10**9
NODES4 = Path(__file__).resolve().parents[2] / "benchmarks" / "nodes4.yaml"


def diamond() -> Workload:
    """a(10) -> b(20), c(30) -> d(4); 1 cpu and 1 GB used each."""
    def t(name: str, secs: float, *parents: str) -> SimTask:
        return SimTask(name, parents, secs, GB, cpu=1, memory=GB)
    return Workload("diamond", [t("a", 10), t("b", 20, "a"), t("c", 30, "a"),
                                t("d", 4, "b", "c")])


def one_node(speed: float = 2.0, cpus: float = 2) -> list[Node]:
    return [Node("n", cpus, cpus, 4 * GB, 4 * GB, speed=speed)]


@pytest.mark.parametrize("policy", ["akoscore", "first-fit", "round-robin", "cost"])
def test_diamond_exact_makespan_waste_and_utilisation(policy: str) -> None:
    r = simulate(diamond(), one_node(), policy)
    assert r.makespan == pytest.approx((10 + 30 + 4) / 2)  # b and c run side by side
    starts = {run.task: run.start for run in r.runs}
    assert starts == {"a": 0.0, "b": 5.0, "c": 5.0, "d": 20.0}
    # node held 22 s x 4 GB; tasks use 1 GB for 5 + 10 + 15 + 2 s
    assert r.memory_waste_gbh == pytest.approx((4 * 22 - 32) / 3600)
    assert r.utilisation["n"] == pytest.approx(32 / (2 * 22))


def test_a_full_node_makes_ready_tasks_wait() -> None:
    r = simulate(diamond(), one_node(speed=1.0, cpus=1))
    assert r.makespan == pytest.approx(10 + 20 + 30 + 4)  # strictly one at a time


def test_alpha_zero_uses_the_fast_node_and_alpha_one_the_small_one() -> None:
    nodes = [Node("big-fast", 4, 4, 64 * GB, 64 * GB, speed=2.0),
             Node("small", 4, 4, 2 * GB, 2 * GB, speed=1.0)]
    fast = simulate(diamond(), nodes, "akoscore", alpha=0.0)
    fit = simulate(diamond(), nodes, "akoscore", alpha=1.0)
    assert {r.node for r in fast.runs} == {"big-fast"} and fast.makespan == pytest.approx(22)
    assert {r.node for r in fit.runs} == {"small"} and fit.makespan == pytest.approx(44)
    assert fit.memory_waste_gbh < fast.memory_waste_gbh


def test_a_task_that_fits_nowhere_is_an_error() -> None:
    wl = Workload("x", [SimTask("huge", (), 1.0, 0, cpu=64)])
    with pytest.raises(SimulationError, match="huge"):
        simulate(wl, one_node())


def test_heft_on_the_diamond() -> None:
    nodes = [*one_node(), Node("slow", 1, 1, 4 * GB, 4 * GB, speed=0.5)]
    r = heft(diamond(), nodes)
    assert r.makespan == pytest.approx(22)
    assert {run.node for run in r.runs} == {"n"}


def test_real_trace_runs_every_task_after_its_parents() -> None:
    wl = from_trace(shared_file(WFCOMMONS / "srasearch-chameleon-10a-001.json"))
    nodes = load_nodes_file(NODES4)
    for policy in ("akoscore", "first-fit", "round-robin", "cost"):
        r = simulate(wl, nodes, policy)
        assert len(r.runs) == len(wl.tasks) == 22
        ends = {run.task: run.end for run in r.runs}
        for run in r.runs:
            task = next(t for t in wl.tasks if t.name == run.task)
            assert all(ends[p] <= run.start + 1e-9 for p in task.parents)
        longest = max(t.runtime for t in wl.tasks)
        assert r.makespan >= longest / max(n.speed for n in nodes)
    assert heft(wl, nodes).makespan <= simulate(wl, nodes, "first-fit").makespan
