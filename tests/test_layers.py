"""The import graph is the architecture: adapters and the worker see only the port, the port
sees nothing else of akoflow, and the core's layers import only the layers the README's
architecture section puts before them.

Each check walks the source's AST (every import, also inside functions and TYPE_CHECKING
blocks) under `ROOT`, so a forbidden import anywhere fails here, not in review.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

# Modules of the core that belong to a layer named otherwise.
ALIASES = {"site_keys": "sites", "__main__": "cli"}


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every `akoflow` import in `path`; relative imports count
    as imports of the file's own package."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if package.startswith("executors"):
        package = "akoflow." + package
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            # `from akoflow import x` imports the module akoflow.x when there is one
            names = [f"{base}.{a.name}" if base == "akoflow" else base for a in node.names]
        else:
            continue
        for name in names:
            if name == "akoflow" or name.startswith("akoflow."):
                yield node.lineno, name


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def violations(files: list[Path], allowed: tuple[str, ...]) -> list[str]:
    return [f"{f.relative_to(ROOT)}:{line}: imports {mod}"
            for f in files for line, mod in imports(f) if not within(mod, *allowed)]


def readme_layers() -> list[str]:
    """The layer order as the README's architecture section states it."""
    text = (ROOT / "README.md").read_text()
    start = text.index("Layers, each importing only the layers before it")
    end = text.index("`cli`.", start) + len("`cli`")
    return re.findall(r"`([a-z_]+)`", text[start:end])


def layer_of(path: Path) -> str:
    first = path.relative_to(ROOT / "akoflow").parts[0].removesuffix(".py")
    return ALIASES.get(first, first)


def layer_of_module(module: str) -> str | None:
    parts = module.split(".")
    return None if len(parts) == 1 or parts[1] == "__version__" else \
        ALIASES.get(parts[1], parts[1])


def test_adapters_import_only_the_port_and_the_worker() -> None:
    files = sorted((ROOT / "executors").glob("*.py"))
    assert len(files) > 10
    assert violations(files, ("akoflow.port", "akoflow.worker", "akoflow.executors")) == []


def test_the_worker_imports_only_the_port() -> None:
    files = sorted((ROOT / "akoflow" / "worker").glob("*.py"))
    assert violations(files, ("akoflow.port", "akoflow.worker")) == []


def test_the_port_imports_nothing_else_of_akoflow() -> None:
    files = sorted((ROOT / "akoflow" / "port").glob("*.py"))
    assert violations(files, ("akoflow.port",)) == []


def test_core_layers_import_only_earlier_layers() -> None:
    order = readme_layers()
    assert order[:2] == ["port", "worker"] and order[-1] == "cli", order
    rank = {name: i for i, name in enumerate(order)}
    found = []
    for f in sorted((ROOT / "akoflow").rglob("*.py")):
        if f == ROOT / "akoflow" / "__init__.py":
            continue
        mine = layer_of(f)
        if mine not in rank:
            found.append(f"{f.relative_to(ROOT)}: layer {mine!r} is not in the README's list")
            continue
        for line, mod in imports(f):
            if within(mod, "akoflow.executors"):
                found.append(f"{f.relative_to(ROOT)}:{line}: imports the adapter {mod}")
                continue
            theirs = layer_of_module(mod)
            if theirs is not None and rank.get(theirs, len(order)) > rank[mine]:
                found.append(f"{f.relative_to(ROOT)}:{line}: {mine} imports {mod} ({theirs})")
    assert found == []


def test_importing_the_worker_loads_no_sql() -> None:
    """`akoflow worker` runs in every batch job: it must not load sqlite3 or the manifest."""
    code = ("import akoflow.worker.main, sys; "
            "bad = [m for m in sys.modules if m == 'sqlite3' or m.startswith("
            "('akoflow.manifest', 'akoflow.dispatch', 'akoflow.spec'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"


def test_each_batch_scheduler_is_one_module_within_300_lines() -> None:
    """psij's shape: a scheduler's adapter (state map, argv builders, parsers, executor
    class) is one module of at most 300 lines, found by its entry point; the base owns the
    rest. What a scheduler has beyond psij's hooks sits in files of its own."""
    from importlib.metadata import entry_points

    found = {ep.name: ep.value.split(":")[0] for ep in entry_points(group="akoflow.executors")}
    for kind in ("slurm", "sge", "pbs", "lsf", "flux"):
        assert found[kind] == f"akoflow.executors.{kind}", found[kind]
        lines = len((ROOT / "executors" / f"{kind}.py").read_text().splitlines())
        assert lines <= 300, f"executors/{kind}.py has {lines} lines"
    assert not list((ROOT / "executors").glob("*_executor.py"))
