"""Telling a misspelt key from an extra one: `depends_on` is a typo of `dependsOn`, `note` is not.

AkôFlow files carry keys its engine ignores, so an unknown key is only a warning; but a key a
couple of keystrokes away from a known one almost always means the user's setting is silently
lost (`depends_on:` leaves an activity with no parents). Those are errors. difflib's ratio is no
measure of keystrokes (it rates `cpu` closer to `gpus` than a one-letter slip on a long key), so
this is a plain edit distance, counting a swap of two neighbours as one edit.
"""

from __future__ import annotations

from collections.abc import Iterable

# Keys that mean a known field in other tools' spelling, whatever their distance to it.
ALIASES = {
    "cpu": "cpuLimit",
    "cpus": "cpuLimit",
    "memory": "memoryLimit",
    "mem": "memoryLimit",
    "walltime": "timeLimit",
    "command": "run",
    "cmd": "run",
    "dependencies": "dependsOn",
    "deps": "dependsOn",
    "retry": "retries",
    "environment": "env",
}
MAX_EDITS = 2
SHORT_KEY = 4  # known keys this short allow one edit: `note` is not a typo of `name`


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance, ignoring case (`dependson` is one edit away)."""
    a, b = a.lower(), b.lower()
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            best = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, prev2[j - 2] + 1)
            cur.append(best)
        prev2, prev = prev, cur
    return prev[-1]


def near_miss(key: str, known: Iterable[str]) -> str | None:
    """The known key `key` was most likely meant as, if it is a typo of one; else None."""
    names = sorted(known)
    alias = ALIASES.get(key.lower())
    if alias in names:
        return alias
    best: tuple[int, str] | None = None
    for name in names:
        if abs(len(name) - len(key)) > MAX_EDITS:
            continue
        d = edit_distance(key, name)
        if d <= (1 if len(name) <= SHORT_KEY else MAX_EDITS) and (best is None or d < best[0]):
            best = (d, name)
    return None if best is None else best[1]
