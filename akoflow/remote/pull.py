"""`akoflow pull SITE:ID`: the run's provenance into this machine's manifest, its outputs and
task logs into a local directory, over one connection.

The rows arrive as the cluster's manifest holds them and are imported generically
(`Manifest.import_workflow`); paths under the cluster's run and work directories are
rewritten to the local copy, so `report`, `crate`, `prov`, `lineage`, `metrics` and `files`
work offline. Files are compared by size and mtime: only changed ones travel, and a file cut
off mid-transfer resumes from its `.part`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from akoflow.manifest import Manifest
from akoflow.port import akoflow_home
from akoflow.remote.client import Session
from akoflow.remote.config import RemoteError, ssh_config

PART = ".akoflow-part"


def default_dir(site: str, remote_id: int) -> Path:
    return akoflow_home() / "pulled" / f"{site}-{remote_id}"


def _rewriter(remote_run: str, remote_work: str, local: Path) -> Any:
    prefixes = [(remote_work.rstrip("/"), str(local / "work")),
                (remote_run.rstrip("/"), str(local))]

    def rewrite(table: str, column: str, value: Any) -> Any:
        if not isinstance(value, str) or not column.endswith(("_dir", "_path")) \
                or column == "spec_path":
            return value
        for old, new in prefixes:
            if value == old or value.startswith(old + "/"):
                return new + value[len(old):]
        return value

    return rewrite


def pull(m: Manifest, site: str, ref: str, out_dir: str | None = None,
         pattern: str | None = None, with_files: bool = True) -> dict[str, Any]:
    cfg = ssh_config(site)
    with Session(cfg) as s:
        exported = s.request("export", {"ref": ref})
        remote_id = int(exported["id"])
        local = Path(out_dir).resolve() if out_dir else default_dir(site, remote_id)
        rewrite = _rewriter(exported["run_dir"], exported["work_dir"], local)
        wf_id = m.import_workflow(exported["tables"], site, remote_id, rewrite)
        fetched = sent = 0
        if with_files:
            files = s.request("listing", {"ref": ref, "pattern": pattern})
            fetched, sent = _fetch(s, ref, files, local)
    return {"id": wf_id, "origin": f"{site}:{remote_id}", "name": exported["name"],
            "status": exported["status"], "dir": str(local), "files_fetched": fetched,
            "bytes_received": sent,
            "rows": sum(len(t["rows"]) for t in exported["tables"].values())}


def _local_path(local: Path, kind: str, rel: str) -> Path:
    base = local / "work" if kind == "work" else local
    path = (base / rel).resolve()
    if not str(path).startswith(str(base.resolve()) + os.sep):
        raise RemoteError(f"refusing to write {rel!r} outside {base}")
    return path


def _fetch(s: Session, ref: str, files: list[list[Any]], local: Path) -> tuple[int, int]:
    """Ask for the files that differ here (with the offset of a broken transfer)."""
    wanted: list[list[Any]] = []
    meta: dict[tuple[str, str], tuple[int, float]] = {}
    for kind, rel, size, mtime in files:
        path = _local_path(local, kind, rel)
        meta[(kind, rel)] = (int(size), float(mtime))
        try:
            st = path.stat()
            if st.st_size == size and abs(st.st_mtime - mtime) < 1e-3:
                continue
        except OSError:
            pass
        part = path.with_name(path.name + PART)
        offset = part.stat().st_size if part.exists() else 0
        wanted.append([kind, rel, offset if offset <= size else 0])
    if not wanted:
        return 0, 0
    received = 0
    done = 0
    handle: Any = None
    current: tuple[str, str] | None = None
    try:
        s.send("send", {"ref": ref, "files": wanted})
        while True:
            try:
                msg, data = s.channel.recv()
            except (OSError, EOFError, ValueError):
                raise s.lost("while pulling files") from None
            if "item" not in msg:
                if not msg.get("ok"):
                    raise RemoteError(f"{s.site}: {msg.get('error') or 'failed'}")
                break
            item = msg["item"]
            key = (str(item["kind"]), str(item["rel"]))
            path = _local_path(local, *key)
            part = path.with_name(path.name + PART)
            if key != current:
                if handle is not None:
                    handle.close()
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(part, "r+b" if part.exists() else "wb")  # noqa: SIM115
                handle.truncate(int(item["offset"]))
                handle.seek(int(item["offset"]))
                current = key
            handle.write(data)
            received += len(data)
            if int(item["offset"]) + len(data) >= int(item["size"]):
                handle.close()
                handle = None
                current = None
                part.replace(path)
                os.utime(path, (item["mtime"], item["mtime"]))
                done += 1
    finally:
        if handle is not None:
            handle.close()
    return done, received
