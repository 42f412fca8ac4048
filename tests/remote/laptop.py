"""The laptop side of the remote tests: root in a temporary HOME with its own AKOFLOW_HOME,
site profiles and known_hosts, talking to the sshd of tests/infra/sshd.py as the cluster
user. Nothing here is shared with the cluster side but the SSH connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.infra.sshd import SshCluster

REMOTE_HOME = ".akoflow-test"  # under the cluster user's home, wiped once per session
TRANSPORTS = ("paramiko", "openssh")


@dataclass
class Laptop:
    root: Path
    cluster: SshCluster
    env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def known_hosts(self) -> Path:
        return self.home / ".ssh" / "known_hosts"

    @property
    def sites(self) -> Path:
        return self.root / "sites"

    def site(self, name: str, transport: str, *, extends: str = "local",
             **ssh: Any) -> str:
        """Write profile `name` (the cluster user on the target sshd) and return the name."""
        block: dict[str, Any] = {
            "host": self.cluster.host, "port": self.cluster.target.port,
            "user": self.cluster.user, "identity_file": str(self.cluster.client_key),
            "known_hosts": str(self.known_hosts), "remote_home": f"~/{REMOTE_HOME}",
            "transport": transport, **ssh}
        profile = {"name": name, "extends": extends, "ssh": block}
        self.sites.mkdir(parents=True, exist_ok=True)
        (self.sites / f"{name}.yaml").write_text(yaml.safe_dump(profile))
        return name

    def ak(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None,
           check: bool = False) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, "HOME": str(self.home), "AKOFLOW_HOME": str(self.root / "ak"),
                "AKOFLOW_SITES": str(self.sites), **self.env, **(env or {})}
        full.pop("SSH_AUTH_SOCK", None)  # keys from the profile only
        proc = subprocess.run([sys.executable, "-m", "akoflow", *args], capture_output=True,
                              text=True, timeout=timeout, env=full, cwd=self.root,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"akoflow {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ak(*args, "--json", check=True, **kw).stdout)

    def wait_status(self, ref: str, wanted: tuple[str, ...] = ("FINISHED", "FAILED",
                    "CANCELLED"), timeout: float = 180) -> dict[str, Any]:
        """Poll `status SITE:ID` from fresh processes until the workflow ends."""
        deadline = time.time() + timeout
        while True:
            data: dict[str, Any] = self.json("status", ref)
            if data["status"] in wanted or time.time() > deadline:
                return data
            time.sleep(1.0)


def make_laptop(root: Path, cluster: SshCluster) -> Laptop:
    lap = Laptop(root, cluster)
    lap.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    lap.known_hosts.write_text(cluster.known_hosts())
    return lap


def remote_home(cluster: SshCluster) -> Path:
    return cluster.home / REMOTE_HOME


def cluster_workflows(cluster: SshCluster) -> list[tuple[int, str]]:
    """(id, name) of every workflow in the cluster's manifest, read as the cluster user (a
    root reader could leave root-owned -shm files behind)."""
    db = remote_home(cluster) / "manifest.db"
    if not db.exists():
        return []
    code = ("import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "print(json.dumps(c.execute('SELECT id, name FROM workflow').fetchall()))")
    out = cluster.as_user("python3", "-c", code, str(db))
    return [(int(i), str(n)) for i, n in json.loads(out)]
