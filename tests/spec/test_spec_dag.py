from __future__ import annotations

import time

import pytest

from akoflow.spec import Dag
from akoflow.spec.dag import graph_problems

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}


def test_queries() -> None:
    dag = Dag(DIAMOND)
    assert dag.parents("d") == ["b", "c"]
    assert dag.children("a") == ["b", "c"]
    assert dag.roots() == ["a", "e"]
    assert dag.leaves() == ["d", "e"]
    assert dag.descendants("a") == ["b", "c", "d"]
    assert dag.ancestors("d") == ["a", "b", "c"]
    assert dag.descendants("e") == []
    with pytest.raises(KeyError):
        dag.parents("zzz")


def test_topological_order_is_deterministic_spec_order() -> None:
    dag = Dag({"x": ["b"], "a": [], "b": [], "y": ["a", "x"]})
    assert dag.topological_order() == ["a", "b", "x", "y"]
    order = Dag(DIAMOND).topological_order()
    assert order == ["a", "e", "b", "c", "d"]


def test_cycle_found_and_topo_refuses() -> None:
    dag = Dag({"a": ["c"], "b": ["a"], "c": ["b"], "d": []})
    cycle = dag.find_cycle()
    assert cycle is not None and sorted(cycle) == ["a", "b", "c"]
    # Consecutive entries are parent -> child edges.
    for x, y in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        assert x in dag.parents(y)
    with pytest.raises(ValueError, match="cycle: "):
        dag.topological_order()
    assert Dag(DIAMOND).find_cycle() is None
    assert Dag({"s": ["s"]}).find_cycle() == ["s"]


def test_unknown_parent_rejected() -> None:
    with pytest.raises(KeyError, match="ghost"):
        Dag({"a": ["ghost"]})


def test_critical_path() -> None:
    dag = Dag(DIAMOND)
    length, path = dag.critical_path({"a": 1, "b": 5, "c": 2, "d": 1, "e": 3})
    assert (length, path) == (7.0, ["a", "b", "d"])
    length, path = dag.critical_path({"e": 10})
    assert (length, path) == (10.0, ["e"])
    assert Dag({}).critical_path({}) == (0.0, [])


def test_large_chain_is_linear_and_iterative() -> None:
    n = 100_000
    chain = {f"t{i}": ([f"t{i - 1}"] if i else []) for i in range(n)}
    t0 = time.perf_counter()
    dag = Dag(chain)
    assert dag.find_cycle() is None  # would hit the recursion limit if recursive
    order = dag.topological_order()
    length, path = dag.critical_path({k: 1.0 for k in chain})
    assert order[0] == "t0" and order[-1] == f"t{n - 1}"
    assert length == n and len(path) == n
    assert len(dag.descendants("t0")) == n - 1
    assert time.perf_counter() - t0 < 10


def test_graph_problems() -> None:
    names = ["a", "b", "a", "c"]
    deps = [["b"], ["c"], ["a", "zz"], ["a", "bb"]]
    probs = graph_problems(names, deps)
    kinds = [(p.kind, p.index, p.dep_index) for p in probs]
    assert ("duplicate", 2, None) in kinds
    assert ("self", 2, 0) in kinds
    assert ("unknown", 2, 1) in kinds
    assert ("unknown", 3, 1) in kinds
    assert any(p.message.endswith("did you mean 'b'?") for p in probs if p.index == 3)
    cycle = [p for p in probs if p.kind == "cycle"]
    assert len(cycle) == 1
    assert cycle[0].message.startswith("cycle: a -> b -> c -> a")
