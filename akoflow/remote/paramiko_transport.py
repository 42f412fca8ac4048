"""The paramiko transport: one SSH connection (through each jump host in turn, every host key
checked against known_hosts), keys and the agent only, never a password or a prompt."""

from __future__ import annotations

import getpass
import logging
import socket
from typing import IO, Any

import paramiko

from akoflow.remote.config import Hop, RemoteError, SshConfig
from akoflow.remote.transport import fingerprint, known_hosts_file

# paramiko logs a dropped connection as an ERROR with a traceback-like line; the user gets
# one `error:` line from akoflow instead (--debug shows paramiko's own).
if not logging.getLogger().isEnabledFor(logging.DEBUG):
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class UnknownHostKey(paramiko.SSHException):
    def __init__(self, hop: Hop, key: paramiko.PKey) -> None:
        super().__init__(hop.known_hosts_name)
        self.hop = hop
        self.key = key


class _Refuse(paramiko.MissingHostKeyPolicy):
    """Nothing is ever added silently: an unknown key stops the connection."""

    def __init__(self, hop: Hop) -> None:
        self.hop = hop

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise UnknownHostKey(self.hop, key)


def host_key_error(site: str, exc: Exception, kh: str) -> RemoteError:
    """The one line for an unknown or changed host key."""
    if isinstance(exc, UnknownHostKey):
        return RemoteError(
            f"the host key of {exc.hop.known_hosts_name} is not known ({exc.key.get_name()} "
            f"{fingerprint(exc.key.asbytes())}); compare it with the fingerprint the "
            f"cluster publishes, then run `akoflow remote trust {site}`")
    assert isinstance(exc, paramiko.BadHostKeyException)
    return RemoteError(
        f"WARNING: THE HOST KEY OF {exc.hostname} HAS CHANGED (known: "
        f"{fingerprint(exc.expected_key.asbytes())}, offered: {fingerprint(exc.key.asbytes())}"
        f"); refusing to connect: someone may be intercepting. If the cluster's key really "
        f"changed, remove the old one (`ssh-keygen -R '{exc.hostname}' -f {kh}`) and run "
        f"`akoflow remote trust {site}`")


def _connect_hop(cfg: SshConfig, hop: Hop, sock: Any, keys_only: bool = False
                 ) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    kh = known_hosts_file(cfg)
    if kh.exists():
        client.load_host_keys(str(kh))
    client.set_missing_host_key_policy(_Refuse(hop))
    try:
        client.connect(
            hop.host, hop.port, username=hop.user or getpass.getuser(),
            key_filename=cfg.identity_file, sock=sock, timeout=cfg.connect_timeout,
            banner_timeout=cfg.connect_timeout, auth_timeout=cfg.connect_timeout,
            allow_agent=True, look_for_keys=cfg.identity_file is None)
    except (UnknownHostKey, paramiko.BadHostKeyException) as exc:
        client.close()
        raise host_key_error(cfg.site, exc, str(kh)) from None
    except paramiko.AuthenticationException:
        client.close()
        who = f"{hop.user or getpass.getuser()}@{hop.known_hosts_name}"
        raise RemoteError(f"authentication refused by {who}: akoflow uses keys and the "
                          "agent only (no passwords); check ssh.identity_file, your agent, "
                          "and the key's place in authorized_keys there") from None
    except (OSError, paramiko.SSHException) as exc:
        client.close()
        raise RemoteError(f"cannot reach {hop.known_hosts_name}: {_reason(exc)}") from None
    return client


def _reason(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return str(exc) or type(exc).__name__


class _Process:
    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self.stdin: IO[bytes] = channel.makefile_stdin("wb")  # type: ignore[assignment]
        self.stdout: IO[bytes] = channel.makefile("rb")  # type: ignore[assignment]
        self._stderr = channel.makefile_stderr("rb")

    def close_stdin(self) -> None:
        try:
            self.channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def stderr_text(self) -> str:
        try:
            return bytes(self._stderr.read()).decode(errors="replace")
        except (OSError, paramiko.SSHException):
            return ""

    def wait(self) -> int:
        return int(self.channel.recv_exit_status())

    def kill(self) -> None:
        self.channel.close()


class ParamikoConnection:
    name = "paramiko"

    def __init__(self, clients: list[paramiko.SSHClient]) -> None:
        self.clients = clients  # jump hosts first, the cluster last

    @classmethod
    def open(cls, cfg: SshConfig) -> ParamikoConnection:
        clients: list[paramiko.SSHClient] = []
        sock: Any = None
        hops = [*cfg.jumps, cfg.target]
        try:
            for i, hop in enumerate(hops):
                clients.append(_connect_hop(cfg, hop, sock))
                if i + 1 < len(hops):
                    nxt = hops[i + 1]
                    transport = clients[-1].get_transport()
                    assert transport is not None
                    try:
                        sock = transport.open_channel("direct-tcpip", (nxt.host, nxt.port),
                                                      ("127.0.0.1", 0))
                    except (OSError, paramiko.SSHException) as exc:
                        raise RemoteError(f"jump host {hop.known_hosts_name} cannot reach "
                                          f"{nxt.known_hosts_name}: {_reason(exc)}") from None
        except BaseException:
            for c in reversed(clients):
                c.close()
            raise
        return cls(clients)

    def start(self, command: str) -> _Process:
        transport = self.clients[-1].get_transport()
        if transport is None or not transport.is_active():
            raise RemoteError("the SSH connection closed")
        channel = transport.open_session()
        channel.exec_command(command)
        return _Process(channel)

    def close(self) -> None:
        for c in reversed(self.clients):
            c.close()
