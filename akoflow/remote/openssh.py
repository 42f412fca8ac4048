"""The OpenSSH transport: the system `ssh`, so ~/.ssh/config applies (ProxyJump, certificates,
ControlMaster/ControlPersist). Commands run with BatchMode (keys and agent only, never a
prompt) and StrictHostKeyChecking=yes; `akoflow remote login SITE` is the one interactive
connection: it opens a master that later commands reuse, so MFA is answered once."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import IO

from akoflow.remote.config import Hop, RemoteError, SshConfig

_UNREACHABLE = ("Connection refused", "Could not resolve hostname", "Connection timed out",
                "No route to host", "Network is unreachable", "Operation timed out",
                "kex_exchange_identification", "Connection closed by", "Connection reset")


def control_path(cfg: SshConfig) -> str:
    """Where the master's socket lives when ~/.ssh/config names none (%C: a 40-character
    hash of host, port and user, so sites never share one). A socket path must stay under
    108 bytes: with a long home, a private 0700 directory under /tmp is used instead."""
    ours = Path.home() / ".ssh"
    if len(str(ours)) + len("/akoflow-cm-") + 40 >= 100:
        ours = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"akoflow-ssh-{os.getuid()}"
        ours.mkdir(mode=0o700, exist_ok=True)
        st = ours.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise RemoteError(f"{ours} must be a private directory of yours (mode 0700)")
    return str(ours / "akoflow-cm-%C")


def _hop_options(cfg: SshConfig, hop: Hop, batch: bool) -> list[str]:
    opts = ["-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={cfg.connect_timeout:g}"]
    if batch:
        opts += ["-o", "BatchMode=yes"]
    if cfg.config:
        opts += ["-F", cfg.config]
    if cfg.known_hosts:
        opts += ["-o", f"UserKnownHostsFile={cfg.known_hosts}"]
    if cfg.identity_file:
        opts += ["-i", cfg.identity_file]
    if hop.port != 22:
        opts += ["-p", str(hop.port)]
    if hop.user:
        opts += ["-l", hop.user]
    return opts


def base_argv(cfg: SshConfig, *, batch: bool = True, verbose: bool = False) -> list[str]:
    """`ssh` with every option up to the destination (no command)."""
    argv = ["ssh", *_hop_options(cfg, cfg.target, batch), "-T", "-o", "LogLevel=ERROR"]
    if cfg.jumps:
        # Our own ProxyCommand rather than -J: -J does not pass these options (known_hosts,
        # identity, strict checking) on to the jump connection.
        last = cfg.jumps[-1]
        inner = ["ssh", *_hop_options(cfg, last, batch), *(["-v"] if verbose else []),
                 "-W", "[%h]:%p"]
        if len(cfg.jumps) > 1:
            inner += ["-J", ",".join(h.spec for h in cfg.jumps[:-1])]
        inner.append(last.host)
        argv += ["-o", "ProxyCommand=" + " ".join(shlex.quote(a.replace("%", "%%"))
                                                  if a != "[%h]:%p" else a for a in inner)]
    if _config_value(cfg, "controlpath") in (None, "none"):
        argv += ["-o", f"ControlPath={control_path(cfg)}"]
    return argv


def _config_value(cfg: SshConfig, key: str) -> str | None:
    """A setting of the effective ssh configuration for the cluster (`ssh -G`, no network)."""
    argv = ["ssh", "-G", *(["-F", cfg.config] if cfg.config else []), cfg.target.host]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return v.strip()
    return None


class _Process:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin: IO[bytes] = proc.stdin
        self.stdout: IO[bytes] = proc.stdout

    def close_stdin(self) -> None:
        try:
            self.stdin.close()
        except OSError:
            pass

    def stderr_text(self) -> str:
        assert self.proc.stderr is not None
        try:
            return self.proc.stderr.read().decode(errors="replace")
        except OSError:
            return ""

    def wait(self) -> int:
        return self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class OpenSshConnection:
    """One `ssh` process per command: the process is the connection (or a session on the
    master `akoflow remote login` opened)."""

    name = "openssh"

    def __init__(self, cfg: SshConfig) -> None:
        self.cfg = cfg
        self.argv = base_argv(cfg)
        self.process: _Process | None = None

    @classmethod
    def open(cls, cfg: SshConfig) -> OpenSshConnection:
        conn = cls(cfg)
        if cfg.require_master and not conn.master_running():
            raise RemoteError(f"site {cfg.site} requires a master connection and none is "
                              f"open: run `akoflow remote login {cfg.site}` first")
        return conn

    def master_running(self) -> bool:
        argv = [*self.argv, "-O", "check", self.cfg.target.host]
        return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=30, check=False).returncode == 0

    def start(self, command: str) -> _Process:
        proc = subprocess.Popen([*self.argv, self.cfg.target.host, command],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.process = _Process(proc)
        return self.process

    def close(self) -> None:
        if self.process is not None:
            self.process.close_stdin()


def classify(cfg: SshConfig, stderr: str) -> RemoteError | None:
    """The one line for ssh's own failures (exit 255), or None when ssh did not fail."""
    site = cfg.site
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        offered = re.search(r"(SHA256:[A-Za-z0-9+/]+)", stderr)
        line = re.search(r"Offending \S+ key in (\S+)", stderr)
        return RemoteError(
            f"WARNING: THE HOST KEY OF {cfg.target.known_hosts_name} HAS CHANGED (offered: "
            f"{offered.group(1) if offered else '?'}; known in "
            f"{line.group(1) if line else 'known_hosts'}); refusing to connect: someone may be "
            "intercepting. If the cluster's key really changed, remove the old one "
            f"(`ssh-keygen -R '{cfg.target.known_hosts_name}'`) and run "
            f"`akoflow remote trust {site}`")
    if "Host key verification failed" in stderr:
        who = re.search(r"host key is known for (\S+)", stderr)
        name = who.group(1) if who else cfg.target.known_hosts_name
        return RemoteError(
            f"the host key of {name} is not known ({offered_key(cfg) or 'fingerprint: see'} "
            f"); compare it with the fingerprint the cluster publishes, then run "
            f"`akoflow remote trust {site}`".replace(" )", ")"))
    if "Permission denied" in stderr:
        return RemoteError(f"authentication refused by {cfg.target.known_hosts_name}: akoflow "
                           "uses keys and the agent only (BatchMode; for MFA run `akoflow "
                           f"remote login {site}` first)")
    for marker in _UNREACHABLE:
        if marker in stderr:
            last = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1]
            return RemoteError(f"cannot reach {cfg.target.known_hosts_name}: {last.strip()}")
    return None


def offered_key(cfg: SshConfig) -> str | None:
    """The key type and fingerprint the server offers, from a verbose probe that stops at
    the (failing) host key check: a strict ssh does not print it otherwise."""
    argv = [*base_argv(cfg, verbose=True), "-v", "-o", "ControlPath=none", cfg.target.host,
            "true"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, check=False).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.findall(r"Server host key: (\S+) (SHA256:\S+)", out)
    return f"{found[-1][0]} {found[-1][1]}" if found else None


def login(cfg: SshConfig, persist: str = "4h") -> int:
    """An interactive master connection (prompts, MFA) that stays in the background."""
    argv = [*base_argv(cfg, batch=False), "-o", "ControlMaster=yes",
            "-o", f"ControlPersist={persist}", "-N", "-f", cfg.target.host]
    return subprocess.run(argv, check=False).returncode


def logout(cfg: SshConfig) -> bool:
    """Stop the master connection, if one runs; whether one did."""
    argv = [*base_argv(cfg), "-O", "exit", cfg.target.host]
    return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=30,
                          check=False).returncode == 0
