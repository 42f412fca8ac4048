"""`akoflow submit WF --site SSH-SITE`: upload what the run needs, register it on the cluster
(where it runs exactly as a local `akoflow submit` there), print `SITE:ID`.

Idempotency: before connecting, the laptop writes an intent keyed by what is submitted (site,
spec, profile, inputs) holding a random key; the cluster registers at most one workflow per
key. A submit whose connection broke leaves the intent behind, so running it again reuses the
key and gets the same workflow back; a successful submit removes it, so submitting the same
thing again later is a new run, as locally.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from akoflow.port import akoflow_home
from akoflow.remote.client import Session
from akoflow.remote.config import SshConfig, ssh_config
from akoflow.remote.transport import choose
from akoflow.remote.upload import HashCache, collect, upload
from akoflow.spec import WorkflowSpec

# Tests set this to cut the connection after the submission went out and before its answer
# came back: the moment where the laptop cannot know whether the cluster registered it.
FAULT_ENV = "AKOFLOW_REMOTE_FAULT"


def state_dir() -> Path:
    return akoflow_home() / "remote"


def _inputs(spec: WorkflowSpec, uploads: list[str]) -> list[tuple[str, Path]]:
    """(destination relative to the work directory, local path) for every upload."""
    base = Path(spec.source).resolve().parent if spec.source else Path.cwd()
    out = []
    for rel in spec.inputs:
        path = base / rel
        out.append((_destination(rel, path), path))
    for item in uploads:
        path = Path(item)
        out.append((_destination(item, path), path.resolve()))
    return out


def _destination(given: str, path: Path) -> str:
    """Relative paths keep their place under the work directory; absolute ones (or ones
    climbing out with ..) land at the top, under their own name."""
    rel = Path(given)
    if rel.is_absolute() or ".." in rel.parts:
        return path.resolve().name
    return rel.as_posix().strip("/") or path.resolve().name


def _intent(cfg: SshConfig, text: str, blobs: list[Any]) -> Path:
    what = json.dumps([cfg.site, text, cfg.profile, [[b.rel, b.digest] for b in blobs]],
                      sort_keys=True, default=str)
    return state_dir() / "intents" / f"{hashlib.sha256(what.encode()).hexdigest()[:32]}.json"


def submit(site: str, spec: WorkflowSpec, uploads: list[str], strict: bool = False
           ) -> dict[str, Any]:
    cfg = ssh_config(site)
    choose(cfg)  # a missing transport is said before anything is hashed or sent
    from akoflow.spec import dump_yaml

    text = spec.raw or dump_yaml(spec)
    cache = HashCache(state_dir() / "hashes.json")
    blobs = collect(_inputs(spec, uploads), cache)
    cache.save()
    intent = _intent(cfg, text, blobs)
    try:
        key = str(json.loads(intent.read_text())["key"])
    except (OSError, ValueError, KeyError):
        key = uuid.uuid4().hex
        intent.parent.mkdir(parents=True, exist_ok=True)
        intent.write_text(json.dumps({"key": key, "site": site}))
    args = {"key": key, "site": site, "profile": cfg.profile, "spec_text": text,
            "source": spec.source, "strict": strict,
            "inputs": [[b.rel, b.digest, b.mode] for b in blobs]}
    with Session(cfg) as s:
        sent = upload(s, blobs)
        s.send("submit", args)
        if os.environ.get(FAULT_ENV) == "drop-after-submit":
            assert s.proc is not None
            s.proc.kill()
            raise s.lost("after the submission was sent")
        answer = s.answer("submit")[0]
    intent.unlink(missing_ok=True)
    return {**answer, "site": site, "ref": f"{site}:{answer['id']}",
            "uploaded_files": len(blobs), "uploaded_bytes": sent}

