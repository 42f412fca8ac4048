"""The `ssh:` block of a site profile: how to reach the cluster that runs the site.

    name: mycluster
    extends: slurm              # what runs on the cluster (travels with each submission)
    ssh:
      host: login.cluster.org   # or an alias of ~/.ssh/config (transport openssh)
      user: alice
      port: 22
      identity_file: ~/.ssh/id_ed25519
      jump: bastion.org         # ProxyJump chain: "user@host:port,host2"
      known_hosts: ~/.ssh/known_hosts   # default: the user's (OpenSSH: ssh's own)
      remote_home: ~/.akoflow   # the cluster's AKOFLOW_HOME (venv, store, manifest)
      python: python3           # the interpreter there that setup builds the venv with
      transport: auto           # paramiko | openssh | auto
      config: ~/.ssh/config     # openssh: another ssh_config file (-F)
      require_master: false     # openssh: never connect without `akoflow remote login`
      connect_timeout: 15       # seconds
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from akoflow.site_keys import BLOCKS
from akoflow.sites import SiteError, load_site

SSH_KEYS = BLOCKS["ssh"]  # one list: site_keys.py, which checks profiles
TRANSPORTS = ("auto", "paramiko", "openssh")
_HOSTPART = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[0-9a-fA-F:.]+\]|[^:\s@]+)"
                       r"(?::(?P<port>\d{1,5}))?$")


class RemoteError(Exception):
    """A remote command failed in a way the user can act on; str() is one line."""


@dataclass(frozen=True)
class Hop:
    """One SSH server on the way: a jump host, or the cluster's login node."""
    host: str
    user: str | None
    port: int

    @property
    def spec(self) -> str:
        """`user@host:port` as ssh's -J takes it."""
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this server (`[host]:port` off port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class SshConfig:
    site: str
    target: Hop
    jumps: tuple[Hop, ...]
    identity_file: str | None
    known_hosts: str | None
    remote_home: str
    python: str
    transport: str
    config: str | None
    require_master: bool
    connect_timeout: float
    profile: dict[str, Any]  # the rest of the profile: what runs on the cluster


def parse_hop(text: str, default_user: str | None = None, default_port: int = 22) -> Hop:
    m = _HOSTPART.match(text.strip())
    if not m:
        raise SiteError(f"{text!r} is not [user@]host[:port]")
    port = int(m.group("port") or default_port)
    if not 0 < port < 65536:
        raise SiteError(f"{text!r}: port out of range")
    return Hop(m.group("host").strip("[]"), m.group("user") or default_user, port)


def _path(value: Any) -> str | None:
    return None if value in (None, "") else os.path.expanduser(str(value))


def from_profile(site: str, profile: dict[str, Any]) -> SshConfig:
    """Check and read the `ssh:` block; SiteError (one line) for anything wrong in it."""
    block = profile.get("ssh")
    if not isinstance(block, dict):
        raise SiteError(f"site {site!r} has no `ssh:` block: it runs on this machine "
                        "(akoflow submit/run without SITE:)")
    unknown = sorted(set(block) - SSH_KEYS)
    if unknown:
        raise SiteError(f"site {site!r}: unknown key ssh.{unknown[0]} (known: "
                        f"{', '.join(sorted(SSH_KEYS))})")
    if not block.get("host"):
        raise SiteError(f"site {site!r}: ssh.host is required")
    transport = str(block.get("transport") or "auto")
    if transport not in TRANSPORTS:
        raise SiteError(f"site {site!r}: ssh.transport must be one of {', '.join(TRANSPORTS)}")
    try:
        port = int(block.get("port") or 22)
        timeout = float(block.get("connect_timeout") or 15)
    except (TypeError, ValueError):
        raise SiteError(f"site {site!r}: ssh.port and ssh.connect_timeout are numbers") from None
    user = str(block["user"]) if block.get("user") else None
    target = parse_hop(str(block["host"]), user, port)
    jump = block.get("jump") or []
    hops = jump.split(",") if isinstance(jump, str) else [str(j) for j in jump]
    # what runs on the cluster: the profile less its ssh block and our own bookkeeping
    rest = {k: v for k, v in profile.items() if k != "ssh" and not k.startswith("_")}
    return SshConfig(
        site=site, target=target, jumps=tuple(parse_hop(h) for h in hops if h.strip()),
        identity_file=_path(block.get("identity_file")),
        known_hosts=_path(block.get("known_hosts")),
        remote_home=str(block.get("remote_home") or "~/.akoflow"),
        python=str(block.get("python") or "python3"), transport=transport,
        config=_path(block.get("config")), require_master=bool(block.get("require_master")),
        connect_timeout=timeout, profile=rest)


def ssh_config(site: str) -> SshConfig:
    return from_profile(site, load_site(site))


def is_remote(site: str) -> bool:
    """Whether site `site` is reached over SSH (its profile has an `ssh:` block)."""
    return isinstance(load_site(site).get("ssh"), dict)
