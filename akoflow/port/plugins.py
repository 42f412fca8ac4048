"""Entry-point lookup for akoflow's plugin groups (executors, placement policies).

akoflow's own entry points are read first: one distribution's metadata, under a millisecond.
Only a name they lack costs the scan of every installed distribution (tens of milliseconds,
which would otherwise be paid by every command, since every run loads an executor and a
placement policy). pyproject.toml stays the one list of what akoflow ships.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint


def find(group: str, name: str) -> EntryPoint | None:
    """The entry point `name` of `group`: akoflow's own first, then any installed package's."""
    from importlib.metadata import PackageNotFoundError, distribution, entry_points

    try:
        own = [ep for ep in distribution("akoflow").entry_points
               if ep.group == group and ep.name == name]
    except PackageNotFoundError:
        own = []
    found = own or [ep for ep in entry_points(group=group) if ep.name == name]
    return found[0] if found else None


def names(group: str) -> list[str]:
    """Every registered name of `group`, sorted."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=group)})
