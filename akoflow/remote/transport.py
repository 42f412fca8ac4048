"""What both SSH transports offer: one connection, on which a remote command is started with
binary stdin/stdout (the session's frames) and a stderr kept for error messages.

`connect(cfg)` picks the transport: `paramiko` (the default where no ssh configuration is
needed; jump hosts handled in-process), or `openssh` (the system `ssh`, which honours
~/.ssh/config: ProxyJump, ControlMaster, certificates, MFA through `akoflow remote login`).
`auto` takes openssh when the profile names an ssh config or wants a master, when
~/.ssh/config has a `Host` entry for the cluster, or when paramiko is not installed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import shutil
from pathlib import Path
from typing import IO, Protocol

from akoflow.remote.config import RemoteError, SshConfig

EXTRA_HINT = "pip install 'akoflow[ssh]'"


class RemoteProcess(Protocol):
    stdin: IO[bytes]
    stdout: IO[bytes]

    def close_stdin(self) -> None: ...

    def stderr_text(self) -> str: ...

    def wait(self) -> int: ...

    def kill(self) -> None: ...


class Connection(Protocol):
    name: str  # "paramiko" | "openssh"

    def start(self, command: str) -> RemoteProcess: ...

    def close(self) -> None: ...


def fingerprint(blob: bytes) -> str:
    """OpenSSH's `SHA256:…` fingerprint of a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_file(cfg: SshConfig) -> Path:
    """The known_hosts akoflow checks and `remote trust` adds to: the profile's, or the
    user's ~/.ssh/known_hosts."""
    return Path(cfg.known_hosts or Path.home() / ".ssh" / "known_hosts")


def _has_paramiko() -> bool:
    return importlib.util.find_spec("paramiko") is not None


def _in_ssh_config(host: str) -> bool:
    """Whether ~/.ssh/config has a Host pattern naming this host (not just `*`)."""
    path = Path.home() / ".ssh" / "config"
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return False
    import fnmatch

    for line in lines:
        words = line.strip().split()
        if len(words) > 1 and words[0].lower() == "host" and any(
                p != "*" and fnmatch.fnmatch(host, p) for p in words[1:]):
            return True
    return False


def choose(cfg: SshConfig) -> str:
    """The transport this site uses; RemoteError (before anything connects) when its
    library or program is missing."""
    kind = cfg.transport
    if kind == "auto":
        wants_openssh = (cfg.config is not None or cfg.require_master
                         or _in_ssh_config(cfg.target.host))
        kind = "openssh" if wants_openssh or not _has_paramiko() else "paramiko"
    if kind == "paramiko" and not _has_paramiko():
        raise RemoteError(f"site {cfg.site} uses transport paramiko, which is not installed: "
                          f"{EXTRA_HINT} (or set ssh.transport: openssh)")
    if kind == "openssh" and shutil.which("ssh") is None:
        raise RemoteError(f"site {cfg.site} uses transport openssh, but there is no `ssh` "
                          f"on PATH: install OpenSSH's client, or {EXTRA_HINT}")
    return kind


def connect(cfg: SshConfig) -> Connection:
    """One SSH connection to the cluster, host keys checked strictly."""
    if choose(cfg) == "paramiko":
        from akoflow.remote.paramiko_transport import ParamikoConnection

        return ParamikoConnection.open(cfg)
    from akoflow.remote.openssh import OpenSshConnection

    return OpenSshConnection.open(cfg)

