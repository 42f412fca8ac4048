"""Reuse of outputs through the Merkle cache (`cache: true` activities).

An activity whose identity (command, image, env, resources and its parents' identities) has
finished before is not run again when every output it produced then still has the content
it had (sha256): the outputs are copied into this run's working directory and the activity
finishes at once, with an attempt on executor `cache` saying where they came from.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
import time
from pathlib import Path

from akoflow.manifest import ActivityRecord, Intent, Manifest, WorkflowRecord
from akoflow.port import AttemptOutcome, FileEntry, Resources, protocol

log = logging.getLogger(__name__)
CACHE_EXECUTOR = "cache"


def sha256_of(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return "sha256:" + digest.hexdigest()


def remember(m: Manifest, wf: WorkflowRecord, act: ActivityRecord,
             files: list[FileEntry]) -> None:
    """Store a finished cache-enabled activity's generated files, with content hashes."""
    if not act.identity:
        return
    root = Path(wf.work_dir)
    outputs = []
    for f in files:
        if f.role != "generated":
            continue
        if f.raw is not None:
            return  # a name that is not UTF-8 cannot round-trip through the cache's JSON
        h = f.hash or sha256_of(root / f.path)
        if h is None:
            return  # an output vanished already: nothing trustworthy to remember
        outputs.append(FileEntry(f.path, f.size, f.mtime, "generated", h))
    m.cache_store(act.identity, wf.id, act.id, str(root), outputs)


def reuse(m: Manifest, wf: WorkflowRecord, act: ActivityRecord) -> bool:
    """Finish `act` from the cache if an identical earlier result is intact."""
    identity = act.identity
    entry = m.cache_lookup(identity) if identity else None
    if identity is None or entry is None or (
            entry.workflow_id == wf.id and entry.activity_id == act.id):
        return False
    src, dst = Path(entry.work_dir), Path(wf.work_dir)
    for f in entry.outputs:
        if f.hash is not None and sha256_of(src / f.path) != f.hash:
            log.info("cache entry %s is stale (%s changed)", identity[:12], f.path)
            return False
    number = act.attempts + 1
    adir = protocol.attempt_dir(wf.run_dir, act.name, number)
    (attempt_id,) = m.begin_attempts(wf.id, [Intent(
        activity_id=act.id, number=number, site=CACHE_EXECUTOR,
        job_name=protocol.job_name(wf.id, act.name, number), attempt_dir=str(adir),
        resources=Resources.from_json(act.resources))])
    if attempt_id is None:
        return False
    start = time.time()
    copied = []
    for f in entry.outputs:
        target = dst / f.path
        if src != dst:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / f.path, target)
        st = target.stat()
        copied.append(FileEntry(f.path, st.st_size, st.st_mtime, "generated", f.hash,
                                observed="cache"))
    m.complete_attempt(wf.id, attempt_id, AttemptOutcome(
        exit_code=0, reason=None, started_at=start, finished_at=time.time(),
        node=socket.gethostname(), files=copied,
        message=f"outputs reused from workflow {entry.workflow_id} (cache {identity[:12]})"))
    return True
