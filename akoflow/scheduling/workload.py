"""What the simulator runs: tasks with a run time, memory used, a request and parents.

From an AkôFlow spec, run time is the declared `estimate`, else `timeLimit`, else the recorded
runtime an imported trace left in the environment, else 1 s; memory used is the request. From
a WfCommons trace (WfFormat 1.5, or 1.3/1.4 `workflow.tasks`) the figures are the recorded
`runtimeInSeconds` and `memoryInBytes`, and the request is the recorded peak (what a user who
had seen the trace would ask for); `coreCount` (default 1) is the cpu request.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akoflow.spec.models import WorkflowSpec
from akoflow.spec.wfformat import TRACE_RUNTIME_ENV


class WorkloadError(ValueError):
    """A workflow or trace the simulator cannot read (one line, names the file)."""


@dataclass(frozen=True)
class SimTask:
    name: str
    parents: tuple[str, ...]
    runtime: float  # seconds at node speed 1.0
    used_memory: int  # bytes actually used (peak)
    cpu: float = 1.0
    memory: int = 0  # bytes requested
    node_selector: Mapping[str, str] = field(default_factory=dict)
    alpha: float | None = None
    estimate: float | None = None


@dataclass(frozen=True)
class Workload:
    name: str
    tasks: list[SimTask]
    alpha: float = 0.5
    schedule: str | None = None


def _pos(value: Any) -> float | None:
    try:
        num = float(value)
    except (TypeError, ValueError):
        return None
    return num if math.isfinite(num) and num >= 0 else None


def from_spec(spec: WorkflowSpec) -> Workload:
    tasks = []
    for act in spec.activities:
        res = act.resources
        recorded = _pos(act.env.get(TRACE_RUNTIME_ENV))
        runtime = next((v for v in (act.estimate, res.time_limit, recorded) if v), 1.0)
        mem = int(res.memory or 0)
        tasks.append(SimTask(
            name=act.name, parents=tuple(dict.fromkeys(act.depends_on)), runtime=float(runtime),
            used_memory=mem, cpu=res.cpu, memory=mem, node_selector=dict(res.node_selector),
            alpha=spec.effective_alpha(act), estimate=act.estimate))
    return Workload(spec.name, tasks, spec.alpha, spec.schedule)


def _trace_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    wf = doc["workflow"]
    if "specification" in wf:
        runs = {t["id"]: t for t in wf.get("execution", {}).get("tasks", [])}
        return [{**runs.get(t["id"], {}), "id": t["id"], "parents": t.get("parents", [])}
                for t in wf["specification"]["tasks"]]
    rows = []
    for t in wf["tasks"]:
        row = dict(t)
        row["id"] = t.get("id") or t["name"]
        if row.get("memoryInBytes") is None and t.get("memory") is not None:
            row["memoryInBytes"] = float(t["memory"]) * 1024  # 1.3 traces record KiB
        row.setdefault("runtimeInSeconds", t.get("runtime"))
        rows.append(row)
    return rows


def from_trace(path: str | Path) -> Workload:
    """A WfCommons WfFormat trace, with its recorded run times and memory."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        rows = _trace_rows(doc)
        names = {str(r.get("name") or r["id"]): str(r["id"]) for r in rows}
        tasks = []
        for r in rows:
            used = int(_pos(r.get("memoryInBytes")) or 0)
            cores = _pos(r.get("coreCount") or r.get("cores")) or 1.0
            tasks.append(SimTask(
                name=str(r["id"]),
                parents=tuple(dict.fromkeys(names.get(str(p), str(p)) for p in r["parents"])),
                runtime=_pos(r.get("runtimeInSeconds")) or 0.0, used_memory=used,
                cpu=float(max(1, math.ceil(cores))), memory=used))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkloadError(f"{path}: cannot read trace: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise WorkloadError(f"{path}: not a WfFormat trace (missing or malformed {exc})") from None
    known = {t.name for t in tasks}
    for t in tasks:
        bad = [p for p in t.parents if p not in known]
        if bad:
            raise WorkloadError(f"{path}: task {t.name} has unknown parent {bad[0]}")
    return Workload(str(doc.get("name") or Path(path).stem), tasks)


def load_workload(path: str | Path) -> Workload:
    """`.json` -> WfCommons trace; anything else -> AkôFlow YAML spec."""
    if str(path).endswith(".json"):
        return from_trace(path)
    from akoflow.spec import SpecError, load_workflow

    try:
        return from_spec(load_workflow(path))
    except SpecError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid workflow"
        raise WorkloadError(f"{path}: {first}") from None
