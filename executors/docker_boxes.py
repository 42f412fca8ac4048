"""The pure half of the Docker executor: what a container is made of and how it is named.

A `Box` is a container the executor watches; its name (`container_name`) is the attempt's
job id; its labels (`labels_of`) describe the attempt so fully that a later dispatcher can
adopt it; `binds_of` mounts the work directory and the spec's volumes. The before-snapshot
of the work directory is kept in the attempt directory (`save_before`/`load_before`) so an
adopting dispatcher can still tell which files the task generated.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from akoflow.port import MetricSample, Resources, TaskLaunch
from akoflow.worker import snapshot
from akoflow.worker.sampler import TreeSampler

BEFORE = "files.before.json"  # the before-snapshot, kept so an adopting dispatcher has it


@dataclass
class Box:
    """A container this executor watches."""

    name: str
    attempt_dir: Path
    work_dir: Path
    cpu: float
    memory: int
    keep: bool
    time_limit: float | None
    interval: float
    started_at: float
    image_id: str | None = None
    pid: int = 0
    pidfd: int = -1
    sampler: TreeSampler | None = None
    metrics: list[MetricSample] = field(default_factory=list)
    before: snapshot.Snapshot | None = None
    reason: str | None = None
    message: str | None = None
    next_sample: float = 0.0
    term_sent: float = 0.0
    retry_at: float = 0.0


def container_name(job_name: str, attempt_dir: str | Path) -> str:
    """Unique per attempt and per manifest: two homes may both have `akoflow.1.a.1`."""
    digest = hashlib.sha1(str(attempt_dir).encode()).hexdigest()[:8]
    return f"{job_name}.{digest}"


def binds_of(ln: TaskLaunch, mount: str) -> list[str]:
    """The work directory at `mount`, read-write, and the spec's other volumes."""
    binds = [f"{ln.work_dir}:{mount}:rw"]
    for host, target in ln.volumes:
        path, _, mode = target.partition(":")
        if path.rstrip("/") != mount.rstrip("/"):
            binds.append(f"{host}:{path}:{mode or 'rw'}")
    return binds


def labels_of(ln: TaskLaunch, *, site: str, home: str, cpu: float, mem: int, keep: bool,
              interval: float) -> dict[str, str]:
    """Everything an adopting dispatcher needs to know about the attempt."""
    return {
        "akoflow.job": ln.job_name, "akoflow.workflow": ln.workflow,
        "akoflow.workflow_id": str(ln.workflow_id), "akoflow.activity": ln.activity,
        "akoflow.attempt": str(ln.attempt), "akoflow.attempt_dir": str(ln.attempt_dir),
        "akoflow.work_dir": str(ln.work_dir), "akoflow.site": site,
        "akoflow.home": home, "akoflow.cpu": str(cpu), "akoflow.memory": str(mem),
        "akoflow.time_limit": str(ln.resources.time_limit or ""),
        "akoflow.keep": "1" if keep else "0",
        "akoflow.sample_interval": str(interval),
    }


def box_from_labels(job: str, adir: Path, labels: Mapping[str, str],
                    default_interval: float) -> Box:
    """A container found by a later dispatcher, described again from `labels_of`'s labels."""
    limit = labels.get("akoflow.time_limit")
    return Box(job, adir, Path(labels.get("akoflow.work_dir") or adir),
               float(labels.get("akoflow.cpu") or 0), int(labels.get("akoflow.memory") or 0),
               labels.get("akoflow.keep") == "1", float(limit) if limit else None,
               float(labels.get("akoflow.sample_interval") or default_interval), time.time())


def request_of(res: Resources) -> tuple[float, int]:
    return float(res.cpu or 0.0), int(res.memory or 0)


def timestamp(text: object) -> float | None:
    """dockerd's RFC 3339 times (nanoseconds; year 1 = never) as epoch seconds."""
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    main, _, frac = text.rstrip("Z").partition(".")
    try:
        base = datetime.fromisoformat(main + "+00:00").timestamp()
    except ValueError:
        return None
    digits = "".join(c for c in frac if c.isdigit())[:6]
    return base + (int(digits) / 10 ** len(digits) if digits else 0.0)


def save_before(adir: Path, snap: snapshot.Snapshot) -> None:
    tmp = adir / f".{BEFORE}.tmp"
    tmp.write_text(json.dumps(snap, separators=(",", ":")))
    os.replace(tmp, adir / BEFORE)


def load_before(adir: Path) -> snapshot.Snapshot | None:
    try:
        data = json.loads((adir / BEFORE).read_text())
    except (OSError, ValueError):
        return None
    return {str(k): (int(v[0]), float(v[1])) for k, v in data.items()}
