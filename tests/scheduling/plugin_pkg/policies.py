"""Test plugins: one that works (prefers the last candidate), and broken ones."""

from __future__ import annotations

from collections.abc import Sequence

from akoflow.port import Node
from akoflow.scheduling.placement import History, TaskView


def prefer_last(task: TaskView, nodes: Sequence[Node], alpha: float,
                history: History) -> list[float | None]:
    return [float(i) for i in range(len(nodes))]


def only_named_b(task: TaskView, nodes: Sequence[Node], alpha: float,
                 history: History) -> list[float | None]:
    return [1.0 if n.name == "b" else None for n in nodes]


def explodes(task: TaskView, nodes: Sequence[Node], alpha: float,
             history: History) -> list[float | None]:
    raise RuntimeError("boom")


def wrong_length(task: TaskView, nodes: Sequence[Node], alpha: float,
                 history: History) -> list[float | None]:
    return [1.0]


def not_numbers(task: TaskView, nodes: Sequence[Node], alpha: float,
                history: History) -> list[object]:
    return ["high"] * len(nodes)


NOT_CALLABLE = 42
