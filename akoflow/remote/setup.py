"""`akoflow remote setup SITE`: this same akoflow, in a venv under the cluster's
`remote_home`, from wheels sent over the one SSH connection (no package index needed there).

The connection runs the cluster's plain `python3` with the bootstrap agent (this package's
`agent.py`, standard library only) read from stdin: it probes the cluster, receives the
wheels into its content-addressed store, builds the venv and checks `akoflow --version`.
Idempotent: when the venv already holds this exact wheel set nothing is sent or installed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from akoflow import __version__
from akoflow.port import akoflow_home
from akoflow.remote import agent
from akoflow.remote.client import Session, remote_path
from akoflow.remote.config import RemoteError, SshConfig, ssh_config
from akoflow.remote.transport import choose
from akoflow.remote.upload import Blob, upload

BOOTSTRAP = ("import sys;exec(compile(sys.stdin.buffer.read(int(sys.stdin.buffer.readline()))"
             ",'akoflow-agent','exec'))")


def bootstrap_command(cfg: SshConfig) -> str:
    import shlex

    return (f"{remote_path(cfg.python)} -I -c {shlex.quote(BOOTSTRAP)} "
            f"{shlex.quote(cfg.remote_home)}")


def setup(site: str, force: bool = False) -> dict[str, Any]:
    from akoflow.remote.wheels import wheel_set

    cfg = ssh_config(site)
    transport = choose(cfg)
    source = Path(agent.__file__).read_bytes()
    with Session(cfg, bootstrap_command(cfg), bootstrap=source) as s:
        probe = s.request("probe")
        if not probe["writable"]:
            raise RemoteError(f"{site}: cannot write {probe['home']} (ssh.remote_home)")
        pip, wheels = wheel_set(probe, akoflow_home() / "remote" / "wheels")
        digest = hashlib.sha256("".join(
            hashlib.sha256(data).hexdigest() for _, data in [pip, *wheels]).encode()
        ).hexdigest()
        installed = probe.get("installed") or {}
        sent = 0
        if force or installed.get("digest") != digest:
            blobs = _blobs(akoflow_home() / "remote" / "wheels" / "sent", [pip, *wheels])
            sent = upload(s, blobs)
            result = s.request("install", {
                "pip_wheel": f"{blobs[0].digest}:{pip[0]}",
                "wheels": [f"{b.digest}:{b.rel}" for b in blobs[1:]],
                "requirement": f"akoflow=={__version__}", "digest": digest})
            version = str(result["version"]).split()[-1]
            action = "installed"
        else:
            version, action = __version__, "up to date"
    if version != __version__:
        raise RemoteError(f"{site}: the venv reports akoflow {version}, not {__version__}")
    return {"site": site, "transport": transport, "action": action, "akoflow": version,
            "python": probe["python"], "interpreter": probe["executable"],
            "platform": probe["platform"], "home": probe["home"],
            "venv": f"{probe['home']}/venv", "writable": probe["writable"],
            "free_bytes": probe["free"], "commands": probe["commands"],
            "wheels": len(wheels) + 1, "bytes_sent": sent}


def _blobs(folder: Path, wheels: list[tuple[str, bytes]]) -> list[Blob]:
    """The wheels as files (uploads read files), under their own names."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in wheels:
        path = folder / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        out.append(Blob(name, path, hashlib.sha256(data).hexdigest(), len(data), 0o644))
    return out
