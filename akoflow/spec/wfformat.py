"""WfCommons WfFormat traces → `WorkflowSpec`, to replay real workflow shapes through akoflow.

Each task becomes an activity that does the trace's I/O: it reads each of its input files,
sleeps for its (scaled) recorded runtime and writes each of its output files (stand-ins of
the recorded size, capped), so scheduling, provenance and exact file lineage are exercised
without the original software or data. The workflow's own inputs (files no task writes)
are created by `import wfformat --data DIR`, whose DIR becomes the work directory; without
it a task reads such a file only if it is there.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

from akoflow.port.names import check_label
from akoflow.spec.checked import ValidationError
from akoflow.spec.dag import graph_problems
from akoflow.spec.errors import SpecError, SpecIssue
from akoflow.spec.models import MAX_NAME_LEN, ActivitySpec, Resources, Volume, WorkflowSpec

TRACE_RUNTIME_ENV = "AKOFLOW_TRACE_RUNTIME"
MAX_FILE_STUB = 4096  # bytes written per output file: enough to be a real file, never big
_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_name(raw: str, fallback: str = "task") -> str:
    """Map any trace identifier onto the activity-name rule, deterministically."""
    name = _BAD.sub("_", raw).lstrip(".") or fallback
    if len(name) > MAX_NAME_LEN:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME_LEN - 9]}-{digest}"
    return name


def _rel_path(name: str) -> str | None:
    """A trace file name as a safe path relative to the working directory (no `..`, no root)."""
    parts = [p for p in PurePosixPath(name).parts if p not in ("/", ".", "..", "")]
    return "/".join(parts) or None


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _command(runtime: float, inputs: list[str], outputs: list[tuple[str, int]], scale: float,
             noop: bool, staged: set[str]) -> str:
    """The stand-in of a task: as few programs as a real task runs (one `cat` for every
    input, one `sleep`; directories and outputs made by bash itself), so what a run costs
    per task is not the stand-in's own process starts."""
    if noop:
        return "true"
    lines: list[str] = []
    made_by_tasks = [q for q in (_rel_path(f) for f in inputs if f not in staged) if q]
    given = [q for q in (_rel_path(f) for f in inputs if f in staged) if q]
    if given:  # the workflow's own inputs: read when they were put in place (`--data`)
        lines.append("set -- " + " ".join(map(shlex.quote, made_by_tasks)) if made_by_tasks
                     else "set --")
        lines.append(f"for f in {' '.join(map(shlex.quote, given))}; do "
                     '[ ! -e "$f" ] || set -- "$@" "$f"; done')
        lines.append('[ "$#" -eq 0 ] || cat -- "$@" > /dev/null')
    elif made_by_tasks:  # files of upstream tasks must be there
        lines.append("cat -- " + " ".join(map(shlex.quote, made_by_tasks)) + " > /dev/null")
    if runtime * scale >= 0.001:
        lines.append(f"sleep {_fmt(runtime * scale)}")
    folders: list[str] = []
    writes: list[str] = []
    for fname, size in outputs:
        rel = _rel_path(fname)
        if rel is None:
            continue
        folder = rel.rpartition("/")[0]
        if folder and folder not in folders:
            folders.append(folder)
        stub = min(max(int(size or 0), 0), MAX_FILE_STUB)
        q = shlex.quote(rel)
        writes.append(f"printf '%{stub}s' '' > {q}" if stub else f": > {q}")
    if folders:
        lines.append("mkdir -p -- " + " ".join(map(shlex.quote, folders)))
    lines.extend(writes)
    return "\n".join(lines) + "\n" if lines else "true"


def _tasks(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Normalise 1.5 (specification/execution) and 1.3/1.4 (`workflow.tasks`) into one shape."""
    wf = doc["workflow"]
    if "specification" in wf:
        spec = wf["specification"]
        sizes = {f["id"]: f.get("sizeInBytes", 0) for f in spec.get("files", [])}
        runs = {t["id"]: t for t in wf.get("execution", {}).get("tasks", [])}
        out = []
        for t in spec["tasks"]:
            ex = runs.get(t["id"], {})
            out.append(
                {
                    "id": t["id"],
                    "parents": t.get("parents", []),
                    "inputs": list(t.get("inputFiles", [])),
                    "in_sizes": {f: sizes.get(f, 0) for f in t.get("inputFiles", [])},
                    "outputs": [(f, sizes.get(f, 0)) for f in t.get("outputFiles", [])],
                    "runtime": ex.get("runtimeInSeconds"),
                    "memory": ex.get("memoryInBytes"),
                    "cores": ex.get("coreCount"),
                }
            )
        return out
    out = []
    for t in wf["tasks"]:
        files = t.get("files", [])
        outputs = [
            (f.get("name") or f.get("id", ""), f.get("sizeInBytes", f.get("size", 0)))
            for f in files
            if f.get("link") == "output"
        ]
        ins = [(f.get("name") or f.get("id", ""), f.get("sizeInBytes", f.get("size", 0)))
               for f in files if f.get("link") == "input"]
        memory = t.get("memoryInBytes")
        if memory is None and t.get("memory") is not None:
            memory = float(t["memory"]) * 1024  # 1.3 traces record KiB
        out.append(
            {
                "id": t.get("id") or t["name"],
                "name": t.get("name"),
                "parents": t.get("parents", []),
                "inputs": [f for f, _ in ins],
                "in_sizes": dict(ins),
                "outputs": outputs,
                "runtime": t.get("runtimeInSeconds", t.get("runtime")),
                "memory": memory,
                "cores": t.get("coreCount", t.get("cores")),
            }
        )
    return out


def trace_io(path: str | Path) -> dict[str, tuple[set[str], set[str]]]:
    """Activity name -> (the paths it reads, the paths it writes), as the imported workflow
    names them: the trace's own file lists, the ground truth lineage is checked against."""
    tasks = _tasks(json.loads(Path(path).read_text(encoding="utf-8")))
    acts = _activities(tasks, 0.0, True, set())
    return {a.name: ({q for q in map(_rel_path, t["inputs"]) if q},
                     {q for q in (_rel_path(f) for f, _ in t["outputs"]) if q})
            for a, t in zip(acts, tasks)}


def stage_inputs(directory: Path, files: dict[str, int]) -> Path:
    """Create the workflow's input files in `directory` (existing ones are left alone)."""
    root = directory.expanduser().resolve()
    for name, size in files.items():
        rel = _rel_path(name)
        if rel is None:
            continue
        target = root / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"\0" * min(max(size, 0), MAX_FILE_STUB))
    root.mkdir(parents=True, exist_ok=True)
    return root


def workflow_inputs(tasks: list[dict[str, Any]]) -> dict[str, int]:
    """Files some task reads and no task writes (the workflow's own inputs), with the size
    the trace records for them when it does (0 otherwise)."""
    made = {f for t in tasks for f, _ in t["outputs"]}
    return {f: int(t["in_sizes"].get(f) or 0) for t in tasks for f in t["inputs"]
            if f not in made}


def _activities(tasks: list[dict[str, Any]], scale: float, noop: bool,
                staged: set[str]) -> list[ActivitySpec]:
    by_ref: dict[str, str] = {}
    used: set[str] = set()
    for t in tasks:
        base = sanitize_name(str(t["id"]))
        name, n = base, 1
        while name in used:
            n += 1
            name = sanitize_name(f"{base}_{n}")
        used.add(name)
        t["act"] = name
        by_ref.setdefault(str(t["id"]), name)
    for t in tasks:  # older traces name parents by task name rather than id
        if t.get("name") is not None:
            by_ref.setdefault(str(t["name"]), t["act"])
    acts = []
    for t in tasks:
        runtime = float(t["runtime"] or 0.0)
        memory = int(t["memory"]) if t["memory"] and float(t["memory"]) > 0 else None
        cores = max(1, math.ceil(float(t["cores"]))) if t["cores"] else 1
        acts.append(
            ActivitySpec(
                name=t["act"],
                run=_command(runtime, t["inputs"], t["outputs"], scale, noop, staged),
                resources=Resources(cpu=float(cores), memory=memory),
                depends_on=list(dict.fromkeys(by_ref.get(str(p), str(p)) for p in t["parents"])),
                env={TRACE_RUNTIME_ENV: repr(runtime)},
            )
        )
    return acts


def import_wfformat(
    path: str | Path, *, scale: float = 0.001, noop: bool = False, name: str | None = None,
    data: str | Path | None = None,
) -> WorkflowSpec:
    """Read a WfFormat JSON trace; `scale` multiplies recorded runtimes into sleep seconds.
    With `data`, the workflow's own input files are created there (stand-ins of their
    recorded size, capped) and that directory becomes the work directory."""
    src = str(path)
    if not (scale >= 0 and math.isfinite(scale)):
        msg = f"must be a finite number >= 0, not {scale!r}"
        raise SpecError([SpecIssue(None, None, "scale", msg)])
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        tasks = _tasks(doc)
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError([SpecIssue(src, None, "", f"cannot read trace: {e}")]) from None
    except json.JSONDecodeError as e:
        raise SpecError([SpecIssue(src, e.lineno, "", f"not valid JSON: {e.msg}")]) from None
    except (KeyError, TypeError, AttributeError) as e:
        msg = f"not a WfFormat trace (missing or malformed {e})"
        raise SpecError([SpecIssue(src, None, "workflow", msg)]) from None
    try:
        wf_name = check_label(name, "workflow") if name is not None else None
        given = workflow_inputs(tasks)
        acts = _activities(tasks, scale, noop, set(given))
    except (ValueError, TypeError, KeyError) as e:
        raise SpecError([SpecIssue(src, None, "workflow", str(e))]) from None
    problems = graph_problems([a.name for a in acts], [a.depends_on for a in acts])
    if problems:
        raise SpecError(
            SpecIssue(src, None, f"workflow.tasks[{p.index}]", p.message) for p in problems
        )
    wf_name = wf_name or sanitize_name(str(doc.get("name") or Path(path).stem), "workflow")
    extra: dict[str, Any] = {}
    if data is not None:
        root = stage_inputs(Path(data), given)
        extra = {"mount_path": str(root), "volumes": [Volume(host=str(root),
                                                              container=str(root))]}
    try:
        return WorkflowSpec(name=wf_name, activities=acts, source=src, **extra)
    except ValidationError as e:
        raise SpecError(SpecIssue(src, None, "workflow." + ".".join(map(str, err["loc"])),
                                  err["msg"]) for err in e.errors()) from None
