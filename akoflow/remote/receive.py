"""What the cluster does with a laptop's submission, and which files it sends back on a pull.

A submission registers once per idempotency key: a file lock serialises two attempts with
the same key, the key is written in the registering transaction, and the inputs are staged
(copied out of the content-addressed store) *before* registration, so a full disk leaves
nothing registered. A repeated submission finds its workflow, finishes what the broken one
did not (inputs moved into place, a dispatcher started) and answers with the same id.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import yaml

from akoflow.manifest import Manifest
from akoflow.remote.agent import CHUNK, Agent, OpError
from akoflow.spec.models import check_name

_KEY = re.compile(r"^[0-9a-f]{32}$")


def safe_relative(rel: str) -> str:
    """A path that stays inside the directory it is joined to."""
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts:
        raise OpError(f"refusing path {rel!r}: not inside the work directory")
    return str(Path(*parts))


def submit(agent: Agent, key: str, site: str, profile: dict[str, Any], spec_text: str,
           source: str | None = None, inputs: list[list[Any]] | None = None,
           strict: bool = False) -> dict[str, Any]:
    from akoflow import service
    from akoflow.spec.loader import parse_workflow_text

    if not _KEY.match(key):
        raise OpError("bad idempotency key")
    check_name(site, "site")
    staging = Path(agent.home) / "staging" / key
    staging.parent.mkdir(parents=True, exist_ok=True)
    m = service.open_manifest()
    with open(f"{staging}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wf_id = m.submission(key)
        new = wf_id is None
        if wf_id is None:
            missing = [i[1] for i in inputs or [] if not agent.store.has(str(i[1]))]
            if missing:
                raise OpError(f"{len(missing)} input files never arrived; run the same "
                              "submit again")
            _write_profile(Path(agent.home), site, profile)
            spec = parse_workflow_text(spec_text, source=source, strict=strict)
            spec.runtime = site
            _stage(agent, staging, inputs or [])
            wf, new = service.register_once(m, spec, key)
        else:
            wf = m.get_workflow(wf_id, texts=False)
        if staging.exists():  # a submission that broke before its inputs were in place
            _move_into(staging, Path(wf.work_dir))
        started = (service.start(m, wf, wait=service.FIRST_CYCLE_WAIT)
                   if new or service.unattended(m, wf) else None)
    os.unlink(f"{staging}.lock")
    return {"id": wf.id, "name": wf.name, "run_dir": wf.run_dir, "work_dir": wf.work_dir,
            "dispatcher": started, "registered": new}


def _write_profile(home: Path, site: str, profile: dict[str, Any]) -> None:
    """The laptop's profile, as the cluster's copy of site `site` ($AKOFLOW_HOME/sites)."""
    if not isinstance(profile, dict) or "executor" not in profile:
        raise OpError(f"site {site}: the profile sent names no executor")
    sites = home / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    text = "# Sent by `akoflow submit --site` from a laptop; replaced by the next one.\n"
    text += yaml.safe_dump({**profile, "name": site}, sort_keys=False)
    tmp = sites / f".{site}.yaml.tmp{os.getpid()}"
    tmp.write_text(text)
    tmp.replace(sites / f"{site}.yaml")


def _stage(agent: Agent, staging: Path, inputs: list[list[Any]]) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for rel, digest, mode in inputs:
            agent.store.copy_to(str(digest), str(staging / safe_relative(str(rel))), int(mode))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _move_into(staging: Path, work: Path) -> None:
    if not work.exists():
        work.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(work)
            return
        except OSError:  # another file system (a volume's host path)
            pass
    work.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        shutil.move(str(entry), str(work / entry.name))
    staging.rmdir()


def _roots(m: Manifest, ref: str) -> tuple[Any, dict[str, Path]]:
    wf = m.find_workflow(ref)
    return wf, {"work": Path(wf.work_dir), "run": Path(wf.run_dir)}


def listing(m: Manifest, ref: str, pattern: str | None) -> list[list[Any]]:
    """[kind, relative path, size, mtime] of the run's outputs (generated files still there,
    matching `pattern`) and its task logs, for `akoflow pull` to compare with its copies."""
    wf, roots = _roots(m, ref)
    out: list[list[Any]] = []
    seen: set[str] = set()
    for r in m.files(wf.id, ["generated"]):
        rel = r.entry.path
        if rel in seen or (pattern and not fnmatch(rel, pattern)):
            continue
        seen.add(rel)
        _add(out, "work", roots["work"], rel)
    run = str(roots["run"]).rstrip("/") + "/"
    for t in m.error_tails(wf.id, only_failed=False):
        for path in (t.stdout_path, t.stderr_path):
            if path and path.startswith(run):
                _add(out, "run", roots["run"], path[len(run):])
    return out


def _add(out: list[list[Any]], kind: str, root: Path, rel: str) -> None:
    try:
        st = (root / rel).stat()
    except OSError:
        return
    out.append([kind, rel, st.st_size, st.st_mtime])


def send_files(m: Manifest, ref: str, files: list[list[Any]]) -> Iterator[tuple[Any, bytes]]:
    """Each requested file from its offset, in chunks (the laptop resumes broken pulls)."""
    _, roots = _roots(m, ref)
    for kind, rel, offset in files:
        if kind not in roots:
            raise OpError(f"unknown file kind {kind!r}")
        path = roots[kind] / safe_relative(str(rel))
        try:
            st = path.stat()
            fh = open(path, "rb")  # noqa: SIM115 (closed by the with below)
        except OSError:
            continue  # gone since the listing: nothing to send
        with fh:
            fh.seek(int(offset))
            pos = int(offset)
            while True:
                data = fh.read(CHUNK)
                if not data and pos > int(offset):
                    break
                yield ({"kind": kind, "rel": rel, "offset": pos, "size": st.st_size,
                        "mtime": st.st_mtime}, data)
                pos += len(data)
                if not data:
                    break
