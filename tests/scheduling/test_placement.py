"""Feasibility, AkôScore scoring and the shipped policies on hand-built node sets."""

from __future__ import annotations

import random

import pytest

from akoflow.port import Node, Resources
from akoflow.scheduling.history import RunHistory
from akoflow.scheduling.placement import TaskView, first_fit, place, task_view
from akoflow.scheduling.policies import PolicyError, akoscore, expected_time, load_policy

GiB = 1024**3


def node(name: str, cpus: float = 4, mem: int = 8 * GiB, *, free_cpu: float | None = None,
         free_mem: int | None = None, speed: float = 1.0, cost: float | None = None,
         features: tuple[str, ...] = (), labels: dict[str, str] | None = None) -> Node:
    return Node(name, cpus, cpus if free_cpu is None else free_cpu, mem,
                mem if free_mem is None else free_mem, features=features, speed=speed,
                cost_per_hour=cost, labels=labels or {})


def test_infeasible_task_waits_with_a_reason() -> None:
    nodes = [node("a", cpus=2), node("b", mem=1 * GiB)]
    [d] = place([TaskView("big", cpu=4, memory=2 * GiB)], nodes)
    assert d.node is None and d.scores == {}
    assert "4 cpu" in d.reason


def test_feasibility_checks_cpu_memory_and_selector_separately() -> None:
    nodes = [node("cpu-short", free_cpu=0.5), node("mem-short", free_mem=GiB // 2),
             node("wrong-label", labels={"zone": "b"}), node("ok", labels={"zone": "a"})]
    [d] = place([TaskView("t", cpu=1, memory=GiB, node_selector={"zone": "a"})], nodes)
    assert d.node == "ok" and list(d.scores) == ["ok"]
    [d] = place([TaskView("t", node_selector={"disk": "ssd"})],
                [node("x"), node("y", features=("ssd",))])
    assert d.node == "y"


def test_room_is_deducted_within_one_call() -> None:
    nodes = [node("only", cpus=2, mem=4 * GiB)]
    out = place([TaskView(f"t{i}", cpu=1, memory=GiB) for i in range(3)], nodes)
    assert [d.node for d in out] == ["only", "only", None]


def test_alpha_zero_picks_the_fastest_feasible_node() -> None:
    nodes = [node("slow", speed=1.0), node("fastest-full", speed=4.0, free_cpu=0),
             node("fast", speed=2.0, mem=64 * GiB)]
    [d] = place([TaskView("t", alpha=0.0, estimate=100)], nodes)
    assert d.node == "fast"
    assert d.scores["fast"] == pytest.approx(1.0) and d.scores["slow"] == pytest.approx(0.5)


def test_alpha_one_picks_the_tightest_memory_fit() -> None:
    # Nodes of one shape, partly used: the task holds the same share of each, so the fit
    # of free memory decides.
    nodes = [node("roomy", free_cpu=3, free_mem=30 * GiB, mem=32 * GiB),
             node("tight", free_cpu=3, free_mem=5 * GiB, mem=32 * GiB),
             node("loose", free_cpu=3, free_mem=12 * GiB, mem=32 * GiB)]
    [d] = place([TaskView("t", memory=4 * GiB, alpha=1.0)], nodes)
    assert d.node == "tight"
    # Idle nodes of equal cpus and speed: the smallest one that fits is the tightest.
    idle = [node("n64", mem=64 * GiB), node("n8", mem=8 * GiB), node("n16", mem=16 * GiB)]
    [d] = place([TaskView("t", memory=4 * GiB, alpha=1.0)], idle)
    assert d.node == "n8"


def test_memory_is_weighed_by_how_long_it_is_held() -> None:
    # One cpu of a 4-cpu, 32 GiB node ties up 8 GiB; of a 4-cpu, 8 GiB node, 2 GiB. The lean
    # node wins at alpha 1 unless the other frees its share much sooner (8 GiB x 1/8 of the
    # time < 2 GiB x 1): memory waste is memory held x time.
    lean, big = node("lean", mem=8 * GiB), node("big", mem=32 * GiB, speed=2.0)
    assert place([TaskView("t", alpha=1.0)], [big, lean])[0].node == "lean"
    fast_big = node("big", mem=32 * GiB, speed=8.0)
    assert place([TaskView("t", alpha=1.0)], [lean, fast_big])[0].node == "big"


def test_longest_expected_task_is_placed_first() -> None:
    # One fast slot and one slow one: the long task gets the fast slot wherever it is listed.
    nodes = [node("fast", cpus=1, speed=2.0), node("slow", cpus=1)]
    out = place([TaskView("short", alpha=0.0, estimate=1), TaskView("long", alpha=0.0,
                                                                    estimate=100)], nodes)
    assert [(d.task, d.node) for d in out] == [("short", "slow"), ("long", "fast")]


def test_balanced_alpha_trades_speed_for_fit() -> None:
    nodes = [node("fast-huge", speed=1.1, mem=128 * GiB), node("fit", mem=8 * GiB)]
    assert place([TaskView("t", alpha=0.0)], nodes)[0].node == "fast-huge"
    assert place([TaskView("t", alpha=0.5)], nodes)[0].node == "fit"


def test_ties_go_to_the_first_listed_node() -> None:
    nodes = [node("b"), node("a"), node("c")]
    assert place([TaskView("t")], nodes)[0].node == "b"


def test_history_estimates() -> None:
    h = RunHistory()
    for secs in (10.0, 30.0, 20.0, 1000.0, 25.0):
        h.add("align", None, secs)
    h.add("align", "id-1", 5.0)
    assert h.expected("align", None) == pytest.approx(22.5)  # median of all six
    assert h.expected("align", "id-1") == pytest.approx(5.0)  # identity first
    assert h.expected("other", None) is None
    t = TaskView("other", estimate=40.0, time_limit=600.0)
    assert expected_time(t, h) == 40.0
    assert expected_time(TaskView("other", time_limit=600.0), h) == 600.0
    assert expected_time(TaskView("other"), h) == 1.0
    assert expected_time(TaskView("align", estimate=40.0), h) == pytest.approx(22.5)


def test_cost_policy_minimises_price_times_expected_time() -> None:
    h = RunHistory.from_runtimes([("t", 3600.0)])
    nodes = [node("pricey-fast", speed=4.0, cost=10.0),  # 0.25 h x 10 = 2.5
             node("cheap-slow", speed=0.5, cost=1.0),  # 2 h x 1 = 2.0
             node("mid", speed=1.0, cost=3.0)]  # 1 h x 3 = 3.0
    assert place([TaskView("t")], nodes, "cost", h)[0].node == "cheap-slow"


def test_first_fit_and_round_robin() -> None:
    nodes = [node("a"), node("b"), node("c")]
    assert [d.node for d in place([TaskView(f"t{i}", seq=i) for i in range(4)], nodes,
                                  "first-fit")] == ["a"] * 4
    rr = place([TaskView(f"t{i}", seq=i) for i in range(4)], nodes, "round-robin")
    assert [d.node for d in rr] == ["a", "b", "c", "a"]
    assert first_fit([Resources(cpu=4), Resources(cpu=1), Resources(cpu=8)],
                     [node("a"), node("b")]) == ["a", "b", None]


def test_first_fit_answers_as_place_does() -> None:
    """The dispatcher's direct first fit gives place(..., "first-fit")'s answer."""
    rng = random.Random(7)
    for _ in range(300):
        nodes = [node(f"n{k}", cpus=4, free_cpu=rng.choice([0, 0.5, 1, 2, 4]),
                      free_mem=rng.choice([0, GiB, 4 * GiB]), features=("ssd",) if k else ())
                 for k in range(rng.randint(1, 3))]
        requests = [Resources.from_json({
            "cpu": rng.choice([None, 0.5, 1, 2]),
            "memory": rng.choice([None, 0, GiB // 2, 2 * GiB]),
            "time_limit": rng.choice([None, 0, 10.0, 60, float("inf")]),
            "node_selector": rng.choice([{}, {}, {"disk": "ssd"}])})
            for _ in range(rng.randint(0, 8))]
        views = [task_view(f"r{i}", r) for i, r in enumerate(requests)]
        assert first_fit(requests, nodes) == [d.node for d in place(views, nodes, "first-fit")]


def test_akoscore_is_bounded() -> None:
    nodes = [node("a", speed=0.5, mem=GiB), node("b", speed=8.0, mem=512 * GiB)]
    for alpha in (0.0, 0.3, 1.0):
        scores = akoscore(TaskView("t"), nodes, alpha, RunHistory())
        assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)


def test_plugin_by_module_function_is_used() -> None:
    nodes = [node("a"), node("b"), node("c")]
    assert place([TaskView("t")], nodes, "tests.scheduling.plugin_pkg.policies:prefer_last")[
        0].node == "c"
    d = place([TaskView("t")], nodes, "tests.scheduling.plugin_pkg.policies:only_named_b")[0]
    assert d.node == "b" and d.scores == {"a": None, "b": 1.0, "c": None}


@pytest.mark.parametrize(("target", "words"), [
    ("tests.scheduling.plugin_pkg.policies:explodes", "raised RuntimeError: boom"),
    ("tests.scheduling.plugin_pkg.broken:anything", "cannot import"),
    ("tests.scheduling.plugin_pkg.policies:missing", "cannot import"),
    ("tests.scheduling.plugin_pkg.policies:wrong_length", "1 scores for 2 nodes"),
    ("tests.scheduling.plugin_pkg.policies:not_numbers", "finite number"),
    ("tests.scheduling.plugin_pkg.policies:NOT_CALLABLE", "not callable"),
    ("no-such-policy", "no such policy"),
])
def test_broken_plugins_are_reported_with_their_name(target: str, words: str) -> None:
    with pytest.raises(PolicyError) as info:
        place([TaskView("t")], [node("a"), node("b")], target)
    assert info.value.policy == target
    assert target in str(info.value) and words in str(info.value)


def test_shipped_policies_resolve_through_entry_points() -> None:
    for name in ("akoscore", "first-fit", "round-robin", "cost"):
        assert callable(load_policy(name))
