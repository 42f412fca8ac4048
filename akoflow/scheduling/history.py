"""Expected run times from provenance: what earlier runs of the same activity took.

A finished attempt's wall time is multiplied by the speed of the node it ran on (from the
manifest's node inventory, 1.0 when unknown), so every figure is "seconds at speed 1.0" and a
placement can divide it by any candidate's speed. The median of the recent runs is used: one
slow run on a loaded node must not steer every later placement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from akoflow.manifest import Manifest

RECENT_RUNS = 20  # per activity: enough for a stable median, small enough to follow change


def _median(values: list[float]) -> float:
    """statistics.median, without importing statistics (and decimal, fractions) in every
    command for it."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclass
class RunHistory:
    """Durations (seconds at speed 1.0) and peak memory of earlier runs, by identity and name."""

    by_identity: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    by_name: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    peak_rss: dict[str, int] = field(default_factory=dict)
    _medians: dict[tuple[str, str | None], float | None] = field(default_factory=dict)

    def add(self, name: str, identity: str | None, seconds: float,
            peak_rss: int | None = None) -> None:
        if identity and len(self.by_identity[identity]) < RECENT_RUNS:
            self.by_identity[identity].append(seconds)
        if len(self.by_name[name]) < RECENT_RUNS:
            self.by_name[name].append(seconds)
        if peak_rss:
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), int(peak_rss))
        self._medians.clear()

    def expected(self, name: str, identity: str | None) -> float | None:
        """Median run time of the same identity (same command and inputs), else same name."""
        key = (name, identity)
        if key not in self._medians:  # placement asks for the same few tasks every round
            runs = self.by_identity.get(identity or "") or self.by_name.get(name)
            self._medians[key] = _median(runs) if runs else None
        return self._medians[key]

    def peak_memory(self, name: str) -> int | None:
        return self.peak_rss.get(name)

    @classmethod
    def from_runtimes(cls, runtimes: Iterable[tuple[str, float]]) -> RunHistory:
        """A history from (name, seconds at speed 1.0) pairs (simulator, tests)."""
        h = cls()
        for name, secs in runtimes:
            h.add(name, None, secs)
        return h


def manifest_history(m: Manifest, limit: int = 200_000) -> RunHistory:
    """The history of the most recent `limit` finished attempts across all workflows."""
    speeds = m.node_speeds()
    h = RunHistory()
    for name, identity, node, started, finished, rss, site in m.finished_runs(limit):
        speed = speeds.get((str(site), str(node)), 1.0) if node else 1.0
        h.add(str(name), identity, (float(finished) - float(started)) * speed, rss)
    return h


class LazyHistory:
    """`manifest_history`, read on the first question: a dispatcher that never has to choose
    between nodes never pays for the query."""

    def __init__(self, m: Manifest) -> None:
        self._m = m
        self._history: RunHistory | None = None

    def expected(self, name: str, identity: str | None) -> float | None:
        if self._history is None:
            self._history = manifest_history(self._m)
        return self._history.expected(name, identity)
