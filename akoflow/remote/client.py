"""The laptop side of a remote command: one SSH connection, one program on the cluster
(`python -I -m akoflow.remote.serve` in the venv `akoflow remote setup` made), requests and
answers as frames on its stdin/stdout. Only that fixed, quoted command line reaches the
remote shell; every name, id and path travels inside the frames."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

from akoflow import __version__
from akoflow.remote.agent import Channel
from akoflow.remote.config import RemoteError, SshConfig, ssh_config
from akoflow.remote.transport import Connection, RemoteProcess, connect


def remote_path(path: str) -> str:
    """A path for the remote shell, quoted, with a leading `~/` left for $HOME there."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def venv_python(cfg: SshConfig) -> str:
    return cfg.remote_home.rstrip("/") + "/venv/bin/python"


def serve_command(cfg: SshConfig) -> str:
    return (f"{remote_path(venv_python(cfg))} -I -m akoflow.remote.serve "
            f"--home {shlex.quote(cfg.remote_home)}")


class Session:
    """One connection to a site's cluster, with the akoflow server (or, for setup, the
    bootstrap agent) on the other end."""

    def __init__(self, cfg: SshConfig, command: str | None = None,
                 bootstrap: bytes | None = None,
                 first: tuple[str, dict[str, Any]] | None = None) -> None:
        self.cfg = cfg
        self.site = cfg.site
        self.conn: Connection = connect(cfg)
        self.proc: RemoteProcess | None = None
        self.bootstrap = bootstrap is not None
        try:
            self.proc = self.conn.start(command or serve_command(cfg))
            if bootstrap is not None:
                self.proc.stdin.write(b"%d\n" % len(bootstrap) + bootstrap)
                self.proc.stdin.flush()
            self.channel = Channel(self.proc.stdout, self.proc.stdin)
            if first is not None:  # a read-only query goes out before the hello arrives:
                try:  # one round trip less (the answer waits behind it)
                    self.send(*first)
                except RemoteError:
                    pass  # the program there is gone: the hello says why
            self.hello = self._hello(bootstrap is None)
        except BaseException:
            self.close()
            raise

    @classmethod
    def to(cls, site: str) -> Session:
        return cls(ssh_config(site))

    def _hello(self, check_version: bool) -> dict[str, Any]:
        try:
            msg, _ = self.channel.recv()
        except (EOFError, OSError, ValueError):
            raise self._failure() from None
        hello = msg.get("hello")
        if not isinstance(hello, dict):
            raise RemoteError(f"{self.site}: unexpected answer from the cluster: {msg!r:.200}")
        if check_version and hello.get("akoflow") != __version__:
            raise RemoteError(f"{self.site} runs akoflow {hello.get('akoflow')}, this "
                              f"machine {__version__}: run `akoflow remote setup {self.site}`")
        return hello

    def _failure(self) -> RemoteError:
        """Why the remote program never answered: ssh's own error, akoflow missing there,
        or the program's last words."""
        assert self.proc is not None
        self.proc.close_stdin()
        stderr = self.proc.stderr_text()
        code = self.proc.wait()
        if self.conn.name == "openssh" and code == 255:
            from akoflow.remote.openssh import classify

            err = classify(self.cfg, stderr)
            if err is not None:
                return err
        if self.bootstrap and code == 127:
            return RemoteError(f"{self.site}: no `{self.cfg.python}` on the cluster; set "
                               "ssh.python to a Python 3.8+ interpreter there")
        if code == 127 or "No such file or directory" in stderr or "not found" in stderr:
            return RemoteError(f"akoflow is not installed on {self.site} (no "
                               f"{venv_python(self.cfg)}): run `akoflow remote setup "
                               f"{self.site}`")
        if "No module named" in stderr:
            return RemoteError(f"the akoflow on {self.site} has no remote support (older "
                               f"than {__version__}): run `akoflow remote setup {self.site}`")
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        return RemoteError(f"{self.site}: the remote akoflow ended (exit {code})"
                           + (f": {last[-1].strip()}" if last else ""))

    def lost(self, during: str) -> RemoteError:
        return RemoteError(f"connection to {self.site} lost {during}; run the same command "
                           "again (an upload resumes, a submission is not registered twice)")

    def send(self, op: str, args: dict[str, Any] | None = None, payload: bytes = b"",
             flush: bool = True) -> None:
        try:
            self.channel.send({"op": op, "args": args or {}}, payload, flush)
        except (OSError, EOFError, ValueError):
            raise self.lost(f"while sending {op}") from None

    def answer(self, op: str) -> tuple[Any, bytes]:
        try:
            msg, data = self.channel.recv()
        except (OSError, EOFError, ValueError):
            raise self.lost(f"while waiting for {op}") from None
        if not msg.get("ok"):
            raise RemoteError(f"{self.site}: {msg.get('error') or 'failed'}")
        return msg.get("data"), data

    def request(self, op: str, args: dict[str, Any] | None = None) -> Any:
        self.send(op, args)
        return self.answer(op)[0]

    def items(self, op: str, args: dict[str, Any]) -> Iterator[Any]:
        """A streamed answer: items until the final `ok`."""
        self.send(op, args)
        while True:
            try:
                msg, _ = self.channel.recv()
            except (OSError, EOFError, ValueError):
                raise self.lost(f"while following {op}") from None
            if "item" in msg:
                yield msg["item"]
                continue
            if not msg.get("ok"):
                raise RemoteError(f"{self.site}: {msg.get('error') or 'failed'}")
            return

    def close(self) -> None:
        if self.proc is not None:
            self.proc.close_stdin()
            try:
                self.proc.wait()
            except Exception:  # the connection is gone already
                pass
        self.conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call(site: str, op: str, args: dict[str, Any]) -> Any:
    """One request, one connection; a read-only query is sent without waiting for the
    cluster's hello (were its version another, the answer is dropped unread)."""
    from akoflow.remote.serve import QUERIES

    if op in QUERIES:
        with Session(ssh_config(site), first=(op, _clean(args))) as s:
            return s.answer(op)[0]
    with Session.to(site) as s:
        return s.request(op, _clean(args))


def stream(site: str, op: str, args: dict[str, Any]) -> Iterator[Any]:
    with Session.to(site) as s:
        yield from s.items(op, _clean(args))


def fetch(site: str, op: str, args: dict[str, Any]) -> bytes:
    with Session.to(site) as s:
        s.send(op, _clean(args))
        return s.answer(op)[1]


def _clean(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if v is not None}
