"""The cluster side of a remote session, in the standard library only.

`akoflow remote setup` sends this file's source to the cluster's plain `python3` (akoflow is
not installed there yet); later every command runs it from the installed venv
(`akoflow.remote.serve` adds the akoflow operations). Both ends speak the same frames over
the SSH channel's stdin/stdout: one JSON line per message, optionally followed by raw bytes
(`"_bytes": n` in the line says how many). Nothing a client sends reaches a shell: names and
paths travel inside these messages, never on the remote command line.

The store is content-addressed (`<home>/store/ab/<sha256>`): a client first asks which of its
blobs are missing (`have`), then sends only those (`put`), from the offset a broken upload
had reached (`<home>/store/partial/<sha256>`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from typing import IO, Any

PROTOCOL = 1
CHUNK = 1 << 20
SCHEDULER_COMMANDS = ("sbatch", "squeue", "qsub", "qstat", "bsub", "bjobs", "flux", "docker",
                      "apptainer", "singularity", "module")


class Channel:
    """JSON lines, each optionally followed by raw bytes, over a pair of binary streams."""

    def __init__(self, rfile: IO[bytes], wfile: IO[bytes]) -> None:
        self.rfile = rfile
        self.wfile = wfile
        self.sent = 0  # payload bytes written (what an upload really sent)

    def send(self, msg: dict[str, Any], payload: bytes = b"", flush: bool = True) -> None:
        if payload:
            msg = {**msg, "_bytes": len(payload)}
        self.wfile.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        if payload:
            self.wfile.write(payload)
            self.sent += len(payload)
        if flush:
            self.wfile.flush()

    def recv(self) -> tuple[dict[str, Any], bytes]:
        line = self.rfile.readline()
        if not line:
            raise EOFError("the other side closed the connection")
        msg = json.loads(line)
        if not isinstance(msg, dict):
            raise ValueError("a message must be a JSON object")
        size = int(msg.pop("_bytes", 0))
        data = b""
        while len(data) < size:
            part = self.rfile.read(size - len(data))
            if not part:
                raise EOFError("the connection closed in the middle of a message")
            data += part
        return msg, data


class OpError(Exception):
    """A request the cluster side refuses; the message goes back to the laptop as is."""


class Store:
    """Content-addressed blobs under `<home>/store`, with resumable partial uploads."""

    def __init__(self, home: str) -> None:
        self.root = os.path.join(home, "store")
        self.partial = os.path.join(self.root, "partial")

    def path(self, digest: str) -> str:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise OpError(f"not a sha256 digest: {digest[:80]!r}")
        return os.path.join(self.root, digest[:2], digest)

    def has(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def offset(self, digest: str) -> int:
        """Bytes of `digest` already here from a broken upload (0 when none)."""
        self.path(digest)
        try:
            return os.path.getsize(os.path.join(self.partial, digest))
        except OSError:
            return 0

    def write(self, digest: str, offset: int, data: bytes, size: int) -> None:
        """Write a chunk at `offset`; the last chunk is checked and moved into place."""
        final = self.path(digest)
        os.makedirs(self.partial, exist_ok=True)
        part = os.path.join(self.partial, digest)
        with open(part, "ab") as fh:
            if fh.tell() != offset:
                fh.truncate(offset)
                if fh.seek(0, os.SEEK_END) != offset:
                    raise OpError(f"upload of {digest[:12]} resumes at {offset}, "
                                  f"but {fh.tell()} bytes are here")
            fh.write(data)
        if offset + len(data) < size:
            return
        if _sha256_file(part) != digest:
            os.unlink(part)
            raise OpError(f"blob {digest[:12]} arrived corrupted; send it again")
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(part, final)

    def copy_to(self, digest: str, dest: str, mode: int) -> None:
        """A private copy (tasks may change their inputs; the blob must stay as it is)."""
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        shutil.copyfile(self.path(digest), dest)
        os.chmod(dest, mode & 0o7777)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class Agent:
    """Serves one session: a hello, then requests until the laptop closes the channel."""

    def __init__(self, home: str, channel: Channel, version: str | None = None) -> None:
        self.home = os.path.abspath(os.path.expanduser(home))
        self.channel = channel
        self.version = version
        self.store = Store(self.home)
        self.put_error: str | None = None
        self.ops: dict[str, Callable[..., Any]] = {
            "have": self.op_have, "probe": self.op_probe, "install": self.op_install,
            "flush": self.op_flush,
        }

    def hello(self) -> dict[str, Any]:
        return {"akoflow": self.version, "protocol": PROTOCOL,
                "python": platform.python_version(), "home": self.home}

    def serve(self) -> None:
        self.channel.send({"hello": self.hello()})
        while True:
            try:
                msg, data = self.channel.recv()
            except EOFError:
                return
            op = str(msg.get("op", ""))
            if op == "put":  # chunks are not answered one by one: `flush` reports
                self.op_put(msg, data)
                continue
            self.answer(op, msg.get("args") or {})

    def answer(self, op: str, args: dict[str, Any]) -> None:
        fn = self.ops.get(op)
        try:
            if fn is None:
                raise OpError(f"unknown operation {op!r} (akoflow {self.version} on the "
                              "cluster)")
            result = fn(**args)
        except OpError as exc:
            self.channel.send({"ok": False, "error": str(exc)})
            return
        except OSError as exc:
            self.channel.send({"ok": False, "error": describe_os_error(exc)})
            return
        if isinstance(result, bytes):
            self.channel.send({"ok": True}, result)
        else:
            self.channel.send({"ok": True, "data": result})

    def op_have(self, blobs: list[list[Any]]) -> dict[str, Any]:
        """Which of [(sha256, size)] are missing here, with the offset to resume from."""
        missing = [[d, self.store.offset(d)] for d, _size in blobs if not self.store.has(d)]
        return {"missing": missing}

    def op_put(self, msg: dict[str, Any], data: bytes) -> None:
        if self.put_error is not None:
            return  # keep reading the stream; `flush` reports the first error
        try:
            self.store.write(str(msg["hash"]), int(msg["offset"]), data, int(msg["size"]))
        except OpError as exc:
            self.put_error = str(exc)
        except OSError as exc:
            self.put_error = describe_os_error(exc)

    def op_flush(self) -> dict[str, Any]:
        error, self.put_error = self.put_error, None
        if error:
            raise OpError(error)
        return {}

    def op_probe(self) -> dict[str, Any]:
        """What setup reports: Python, platform tags, scheduler commands, write access."""
        writable = True
        try:
            os.makedirs(self.home, exist_ok=True)
            probe = os.path.join(self.home, ".write-test")
            with open(probe, "w") as fh:
                fh.write("ok")
            os.unlink(probe)
        except OSError:
            writable = False
        usage = shutil.disk_usage(self.home if os.path.isdir(self.home) else os.path.dirname(
            self.home) or "/")
        return {"python": platform.python_version(), "executable": sys.executable,
                "implementation": sys.implementation.name,
                "version_info": list(sys.version_info[:2]), "platform": sysconfig.get_platform(),
                "machine": platform.machine(), "system": platform.system(),
                "libc": list(platform.libc_ver()), "writable": writable, "free": usage.free,
                "commands": {c: shutil.which(c) for c in SCHEDULER_COMMANDS if shutil.which(c)},
                "installed": _installed_version(self.home), "home": self.home}

    def op_install(self, pip_wheel: str, wheels: list[str], requirement: str,
                   digest: str) -> dict[str, Any]:
        """A venv under home with `requirement` from the uploaded wheels only (no index):
        pip itself comes from its own uploaded wheel, so no ensurepip is needed there."""
        wheel_dir = os.path.join(self.home, "wheels")
        os.makedirs(wheel_dir, exist_ok=True)
        for name in [pip_wheel, *wheels]:
            digest_of, _, filename = name.partition(":")
            if "/" in filename or filename.startswith(".") or not filename.endswith(".whl"):
                raise OpError(f"not a wheel file name: {filename!r}")
            dest = os.path.join(wheel_dir, filename)
            if not os.path.exists(dest):
                self.store.copy_to(digest_of, dest, 0o644)
        venv = os.path.join(self.home, "venv")
        python = os.path.join(venv, "bin", "python")
        if not os.path.exists(python):
            _run([sys.executable, "-m", "venv", "--without-pip", venv])
        pip = os.path.join(wheel_dir, pip_wheel.partition(":")[2], "pip")
        _run([python, pip, "install", "--quiet", "--no-index", "--disable-pip-version-check",
              "--no-cache-dir", "--find-links", wheel_dir, "--force-reinstall", "--no-deps",
              *[os.path.join(wheel_dir, w.partition(":")[2]) for w in wheels]])
        version = _run([python, "-I", "-m", "akoflow", "--version"]).strip()
        with open(os.path.join(venv, "akoflow-wheels.sha256"), "w") as fh:
            fh.write(digest + "\n")
        return {"version": version, "python": python, "requirement": requirement}


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False)
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).strip().splitlines()
        if any("No space left" in line for line in text):
            raise OSError(errno.ENOSPC, "No space left on device")
        raise OpError(f"{os.path.basename(argv[0])} {' '.join(argv[1:3])} failed "
                      f"(exit {proc.returncode}): {text[-1] if text else ''}")
    return proc.stdout


def _installed_version(home: str) -> dict[str, Any] | None:
    venv = os.path.join(home, "venv")
    try:
        with open(os.path.join(venv, "akoflow-wheels.sha256")) as fh:
            digest = fh.read().strip()
    except OSError:
        return None
    return {"digest": digest, "python": os.path.join(venv, "bin", "python")}


def describe_os_error(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"remote disk full ({exc.strerror}){' at ' + exc.filename if exc.filename else ''}"
    if exc.errno == errno.EACCES:
        return f"permission denied on the cluster: {exc.filename or exc.strerror}"
    return f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}"


def main(home: str, version: str | None = None,
         extra: dict[str, Callable[..., Any]] | None = None) -> None:
    channel = Channel(sys.stdin.buffer, sys.stdout.buffer)
    agent = Agent(home, channel, version)
    agent.ops.update(extra or {})
    agent.serve()


if __name__ == "__main__":  # the bootstrap: `python3 - HOME` with this source on stdin
    main(sys.argv[1] if len(sys.argv) > 1 else "~/.akoflow")
