"""Real OpenSSH servers on loopback ports, and an unprivileged "cluster" user, for remote tests.

``ensure_sshd()`` installs Debian's openssh-server when missing, creates the users
``akocluster`` (the cluster account: its own home and AKOFLOW_HOME, nothing shared with the
laptop side, which runs as root in a temporary HOME) and ``akojump`` (only allowed to forward
to the cluster's port), generates host keys and one client key, and starts two sshd:

* ``target`` on 127.0.0.1:2622 (the login node), users: akocluster;
* ``jump`` on 127.0.0.1:2623 (a bastion), users: akojump, forwarding to 2622 only.

Keys only (no passwords, no PAM), LogLevel VERBOSE into a log file per server, so a test can
count the connections a command made ("Accepted publickey" lines). Idempotent like the other
infra modules: files are rewritten only when they differ, daemons started only when not
running (restarted when their config changed). Run ``python -m tests.infra.sshd`` as root.
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from pathlib import Path

from tests.infra._common import (
    InfraError,
    apt_install,
    file_lock,
    kill_and_wait,
    live_pid,
    missing_commands,
    run,
    start_daemon,
    tail,
    wait_for,
    write_if_changed,
)

BASE = Path("/var/lib/akoflow-infra/sshd")
SSHD = "/usr/sbin/sshd"
COMMANDS = (SSHD, "ssh", "ssh-keygen", "useradd", "runuser")
CLUSTER_USER = "akocluster"
JUMP_USER = "akojump"
TARGET_PORT = 2622
JUMP_PORT = 2623
HOST = "127.0.0.1"


@dataclass(frozen=True)
class SshServer:
    """One sshd instance: its port, files and log."""
    name: str
    port: int
    user: str
    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def pidfile(self) -> Path:
        return self.directory / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def host_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    @property
    def host_key_line(self) -> str:
        """The known_hosts line for this server (``[127.0.0.1]:PORT ssh-ed25519 AAAA…``)."""
        kind, blob = (self.host_key.with_suffix(".pub")).read_text().split()[:2]
        return f"[{HOST}]:{self.port} {kind} {blob}\n"

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ssh-keygen prints it."""
        out = run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_key)]).stdout
        return out.split()[1]

    def pid(self) -> int | None:
        return live_pid(self.pidfile, "sshd")

    def accepted(self) -> int:
        """How many connections were authenticated so far (lines of this server's log)."""
        try:
            return self.log.read_text(errors="replace").count("Accepted publickey for ")
        except OSError:
            return 0

    def start(self, timeout: float = 20) -> None:
        if self.pid() is not None:
            return
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
        start_daemon([SSHD, "-f", str(self.config), "-E", str(self.log)],
                     name=f"sshd-{self.name}")
        wait_for(lambda: self.pid() is not None and _listening(self.port), timeout=timeout,
                 what=f"sshd {self.name} on port {self.port}", details=lambda: tail(self.log))

    def stop(self) -> None:
        """Stop the listener and every connection it serves (their sshd processes are its
        descendants): clients see their connection drop, as when a login node goes away."""
        pid = self.pid()
        if pid is None:
            return
        kill_and_wait([*_descendants(pid), pid])


@dataclass(frozen=True)
class SshCluster:
    """What the tests get: both servers, the cluster user, the laptop's client key."""
    target: SshServer
    jump: SshServer
    user: str
    home: Path
    client_key: Path
    jump_user: str = JUMP_USER
    host: str = HOST

    def known_hosts(self, *servers: SshServer) -> str:
        """known_hosts text trusting the given servers (default: both)."""
        return "".join(s.host_key_line for s in (servers or (self.target, self.jump)))

    def as_user(self, *argv: str, timeout: float = 60) -> str:
        """Run a command as the cluster user, in its home, with a login-like environment."""
        env = {"HOME": str(self.home), "USER": self.user, "LOGNAME": self.user,
               "PATH": "/usr/local/bin:/usr/bin:/bin"}
        return run(["runuser", "-u", self.user, "--", "env", "-i",
                    *[f"{k}={v}" for k, v in env.items()], *argv],
                   timeout=timeout, cwd=self.home).stdout


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _config(server: SshServer, extra: list[str]) -> str:
    return "\n".join([
        "# Written by akoflow tests/infra/sshd.py; edits are overwritten.",
        f"Port {server.port}",
        f"ListenAddress {HOST}",
        f"HostKey {server.host_key}",
        f"PidFile {server.pidfile}",
        # root-owned keys directory: StrictModes checks it, and the user cannot change it
        f"AuthorizedKeysFile {server.directory}/authorized_keys/%u",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "UsePAM no",
        "PermitRootLogin no",
        f"AllowUsers {server.user}",
        "X11Forwarding no",
        "PrintMotd no",
        "PrintLastLog no",
        "LogLevel VERBOSE",
        "MaxStartups 64:30:128",
        "MaxSessions 32",
        "Subsystem sftp internal-sftp",
        *extra,
    ]) + "\n"


def _ensure_user(name: str, shell: str) -> Path:
    try:
        home = Path(pwd.getpwnam(name).pw_dir)
    except KeyError:
        run(["useradd", "--create-home", "--shell", shell, name])
        home = Path(pwd.getpwnam(name).pw_dir)
    # '!' (useradd's default) reads as a locked account to sshd without PAM: '*' is "no
    # password" and still lets keys in.
    run(["usermod", "-p", "*", name])
    home.mkdir(mode=0o750, exist_ok=True)
    return home


def _ensure_key(path: Path, comment: str) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _ensure_server(server: SshServer, client_pub: str, extra: list[str]) -> None:
    server.directory.mkdir(parents=True, exist_ok=True)
    server.directory.chmod(0o755)
    _ensure_key(server.host_key, f"akoflow-test-{server.name}")
    keys = server.directory / "authorized_keys"
    keys.mkdir(mode=0o755, exist_ok=True)
    write_if_changed(keys / server.user, client_pub)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    changed = write_if_changed(server.config, _config(server, extra))
    run([SSHD, "-t", "-f", str(server.config)])
    if changed:
        server.stop()
    server.start()


def ensure_sshd() -> SshCluster:
    """Install, configure and start both sshd as needed; must run as root."""
    if os.geteuid() != 0:
        raise InfraError("ensure_sshd() must run as root (it adds users and starts sshd)")
    with file_lock("sshd"):
        if missing_commands(COMMANDS):
            apt_install(["openssh-server", "openssh-client"])
            still = missing_commands(COMMANDS)
            if still:
                raise InfraError(f"installed openssh-server but still missing: {still}")
        home = _ensure_user(CLUSTER_USER, "/bin/bash")
        _ensure_user(JUMP_USER, "/bin/sh")
        client = BASE / "client" / "id_ed25519"
        _ensure_key(client, "akoflow-test-laptop")
        pub = client.with_suffix(".pub").read_text()
        target = SshServer("target", TARGET_PORT, CLUSTER_USER, BASE / "target")
        jump = SshServer("jump", JUMP_PORT, JUMP_USER, BASE / "jump")
        _ensure_server(target, pub, ["AllowTcpForwarding no"])
        _ensure_server(jump, pub, ["AllowTcpForwarding local", f"PermitOpen {HOST}:{TARGET_PORT}",
                                   "PermitTTY no", "ForceCommand /bin/false"])
    return SshCluster(target, jump, CLUSTER_USER, home, client)


def main() -> None:
    t0 = time.monotonic()
    c = ensure_sshd()
    print(f"sshd target {c.host}:{c.target.port} ({c.target.fingerprint}), jump "
          f"{c.host}:{c.jump.port} ({c.jump.fingerprint}); user {c.user} home {c.home}; "
          f"client key {c.client_key} (ready in {time.monotonic() - t0:.2f}s)")


if __name__ == "__main__":
    main()
