"""`akoflow remote trust SITE`: add the cluster's (and each jump host's) host key to
known_hosts, only after the user compared its fingerprint: asked interactively, or given
with `--fingerprint SHA256:…`. A key that differs from a known one is never replaced."""

from __future__ import annotations

import base64
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akoflow.remote.config import Hop, RemoteError, SshConfig
from akoflow.remote.transport import fingerprint, known_hosts_file


@dataclass(frozen=True)
class HostKey:
    hop: Hop
    kind: str
    blob: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    @property
    def line(self) -> str:
        return f"{self.hop.known_hosts_name} {self.kind} {base64.b64encode(self.blob).decode()}\n"


def known_keys(path: Path, hop: Hop) -> list[tuple[str, bytes]]:
    """(type, blob) of the keys known_hosts holds for this server (hashed names too)."""
    import hashlib
    import hmac

    out = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    name = hop.known_hosts_name
    for line in lines:
        parts = line.split()
        if len(parts) < 3 or line.startswith("#") or parts[0].startswith("@"):
            continue
        names = parts[0]
        if names.startswith("|1|"):
            salt, want = (base64.b64decode(x) for x in names[3:].split("|"))
            match = hmac.compare_digest(
                hmac.new(salt, name.encode(), hashlib.sha1).digest(), want)
        else:
            match = name in names.split(",")
        if match:
            out.append((parts[1], base64.b64decode(parts[2])))
    return out


def _offered_paramiko(cfg: SshConfig, hop: Hop, via: Any) -> HostKey:
    import paramiko

    sock: Any = via
    try:
        if sock is None:
            sock = socket.create_connection((hop.host, hop.port), timeout=cfg.connect_timeout)
        t = paramiko.Transport(sock)
        t.start_client(timeout=cfg.connect_timeout)
        key = t.get_remote_server_key()
        t.close()
    except (OSError, paramiko.SSHException) as exc:
        raise RemoteError(f"cannot reach {hop.known_hosts_name}: {exc}") from None
    return HostKey(hop, key.get_name(), key.asbytes())


def _offered_keyscan(cfg: SshConfig, hop: Hop) -> HostKey:
    proc = subprocess.run(["ssh-keyscan", "-T", f"{cfg.connect_timeout:g}", "-t", "ed25519",
                           "-p", str(hop.port), hop.host], capture_output=True, text=True,
                          check=False, stdin=subprocess.DEVNULL)
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            return HostKey(hop, parts[1], base64.b64decode(parts[2]))
    raise RemoteError(f"cannot read the host key of {hop.known_hosts_name}: "
                      f"{proc.stderr.strip()[-200:]}")


def trust(cfg: SshConfig, confirm: Callable[[HostKey], bool],
          expected: str | None = None) -> list[tuple[HostKey, str]]:
    """Each hop in order: 'known' (already there), 'added' (confirmed and written) or an
    error. Hops behind a jump host are reached through it (it must be trusted first)."""
    kh = known_hosts_file(cfg)
    results: list[tuple[HostKey, str]] = []
    hops = [*cfg.jumps, cfg.target]
    clients: list[Any] = []
    try:
        for i, hop in enumerate(hops):
            via = None
            if i > 0:
                if not _has_paramiko():
                    raise RemoteError("trusting a host behind a jump host needs paramiko "
                                      "(pip install 'akoflow[ssh]'), or ssh's own prompt")
                via = _channel(cfg, clients, hops[i - 1], hop)
            offered = (_offered_paramiko(cfg, hop, via) if _has_paramiko()
                       else _offered_keyscan(cfg, hop))
            results.append((offered, _decide(kh, offered, confirm, expected, cfg.site)))
    finally:
        for c in reversed(clients):
            c.close()
    return results


def _has_paramiko() -> bool:
    import importlib.util

    return importlib.util.find_spec("paramiko") is not None


def _channel(cfg: SshConfig, clients: list[Any], jump: Hop, hop: Hop) -> Any:
    from akoflow.remote.paramiko_transport import _connect_hop

    sock = clients[-1].get_transport().open_channel(
        "direct-tcpip", (jump.host, jump.port), ("127.0.0.1", 0)) if clients else None
    client = _connect_hop(cfg, jump, sock)
    clients.append(client)
    transport = client.get_transport()
    assert transport is not None
    return transport.open_channel("direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0))


def _decide(kh: Path, offered: HostKey, confirm: Callable[[HostKey], bool],
            expected: str | None, site: str) -> str:
    known = known_keys(kh, offered.hop)
    same_type = [blob for kind, blob in known if kind == offered.kind]
    if offered.blob in same_type:
        return "known"
    if same_type:
        raise RemoteError(
            f"WARNING: THE HOST KEY OF {offered.hop.known_hosts_name} HAS CHANGED (known: "
            f"{fingerprint(same_type[0])}, offered: {offered.fingerprint}); not trusting it. "
            f"If the change is real, remove the old key (`ssh-keygen -R "
            f"'{offered.hop.known_hosts_name}' -f {kh}`) and run `akoflow remote trust "
            f"{site}` again")
    if expected is not None:
        if expected.strip() != offered.fingerprint:
            raise RemoteError(f"{offered.hop.known_hosts_name} offers {offered.fingerprint}, "
                              f"not {expected}: not trusted")
    elif not confirm(offered):
        raise RemoteError(f"host key of {offered.hop.known_hosts_name} not trusted")
    kh.parent.mkdir(parents=True, exist_ok=True)
    with open(kh, "a") as fh:
        fh.write(offered.line)
    return "added"
