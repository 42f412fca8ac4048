"""Reading `strace -f -y -z` output into file operations, attributed to attempts.

One tracer may follow many tasks at once (the local launcher runs every task of a dispatcher
under one `strace -f`), so attribution is by process: the log itself says which process
claimed which attempt (task.sh's first act is `openat(<attempt>/pid, O_CREAT|O_EXCL)`), and
every process created by a clone of an attributed process belongs to the same attempt. A
line of a process whose parentage is not known yet (strace prints a child's first syscalls
before its parent's clone returns) waits until it is.

What is kept per attempt is a list of primitive operations on absolute paths, in order:
`R` opened for reading, `W` opened for writing (or created, truncated, linked, touched),
`RW` opened read-write, `D` removed (unlink, or the old name of a rename). A rename is a `D`
of the old name and a `W` of the new. `worker/fileops.py` turns them into lineage rows.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

_STR = r'"((?:[^"\\]|\\.)*)"'
_DIR = r'(AT_FDCWD|-?\d+)(?:<((?:[^>\\]|\\.)*)>)?'
_LINE = re.compile(r"^(\d+) +(.*)$")
_EXIT = re.compile(r"^\+\+\+ (?:exited with \d+|killed by \S+).*\+\+\+$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)$")
_RET = re.compile(r"\) += (-?\d+)(?:<((?:[^>\\]|\\.)*)>)?(?: .*)?$")
_OPENAT = re.compile(rf"^{_DIR}, {_STR}, ([A-Z0-9_|]+)")
_OPEN = re.compile(rf"^{_STR}, ([A-Z0-9_|]+)")
_TWO_AT = re.compile(rf"^{_DIR}, {_STR}, {_DIR}, {_STR}")
_ONE_AT = re.compile(rf"^{_DIR}, {_STR}(?:, ([A-Z0-9_|]+))?")
_PATHS = re.compile(_STR)
_CLONE_THREAD_FS = re.compile(r"CLONE_(?:FS|THREAD)\b")
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)", re.DOTALL)
_SIMPLE = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"v": b"\v", b"f": b"\f", b"a": b"\a",
           b"b": b"\b", b"e": b"\x1b"}
CLAIM = "/pid"  # task.sh claims its attempt by creating <attempt>/pid
CLONES = frozenset({"clone", "clone3", "fork", "vfork"})


def unescape(text: str) -> str:
    """A strace string (C escapes, `\\xNN` for bytes) as the file system's name
    (os.fsdecode: bytes that are not UTF-8 stay surrogate-escaped)."""
    if "\\" not in text:
        return text
    raw = text.encode("utf-8", "surrogateescape")

    def one(m: re.Match[bytes]) -> bytes:
        code = m.group(1)
        if code[:1] == b"x" and len(code) == 3:
            return bytes([int(code[1:], 16)])
        if code[:1].isdigit():
            return bytes([int(code, 8) & 0xFF])
        return _SIMPLE.get(code, code)

    return os.fsdecode(_ESCAPE.sub(one, raw))


@dataclass
class _Proc:
    owner: str | None = None  # attempt directory, once known
    known: bool = False  # its parent (hence its owner) is known
    cwd: list[str] = field(default_factory=lambda: [""])  # shared by CLONE_FS clones
    pending: str = ""  # an unfinished syscall's first half
    waiting: list[tuple[str, str, str | None]] = field(default_factory=list)


class TraceState:
    """The processes of one strace log and the operations of each attempt."""

    def __init__(self, root_cwd: str = "") -> None:
        self.procs: dict[int, _Proc] = {}
        self.root_cwd = root_cwd
        self.ops: dict[str, list[tuple[str, str]]] = {}  # attempt dir -> operations
        self.owners: dict[str, int] = {}  # attempt dir -> the pid that claimed it
        self.exited: set[int] = set()
        self._first: int | None = None
        self._last: int | None = None  # the process of the line read last

    def _proc(self, pid: int) -> _Proc:
        p = self.procs.get(pid)
        if p is None:
            p = self.procs[pid] = _Proc()
            if self._first is None:  # the traced command itself: no parent in the log
                self._first = pid
                p.known = True
                p.cwd = [self.root_cwd]
        return p

    def feed(self, lines: Iterable[str]) -> None:
        for line in lines:
            m = _LINE.match(line)
            if m is None:
                # strace ends an unfinished call on a line of its own, without the pid and
                # without "resumed", when no other process printed in between
                if self._last is not None and self.procs[self._last].pending:
                    p = self.procs[self._last]
                    body, p.pending = p.pending + line.strip(), ""
                    self._syscall(self._last, p, body)
                continue
            pid, body = int(m.group(1)), m.group(2)
            self._last = pid
            p = self._proc(pid)
            if body.startswith("+++"):
                if _EXIT.match(body):
                    self.exited.add(pid)
                continue
            if body.endswith("<unfinished ...>"):
                p.pending = body[: -len("<unfinished ...>")].rstrip()
                continue
            r = _RESUMED.match(body)
            if r is not None:
                body, p.pending = p.pending + r.group(2), ""
            self._syscall(pid, p, body)

    def _syscall(self, pid: int, p: _Proc, body: str) -> None:
        c = _CALL.match(body)
        if c is None:
            return
        name, rest = c.group(1), c.group(2)
        ret = _RET.search(rest)
        if ret is None or ret.group(1).startswith("-"):
            return
        args = rest[: ret.start()]
        if name in CLONES:
            self._clone(p, int(ret.group(1)), args)
        elif p.known:
            self._apply(pid, p, name, args, ret.group(2))
        else:  # parentage unknown yet: keep the call until the clone is read
            p.waiting.append((name, args, ret.group(2)))

    def _clone(self, parent: _Proc, child_pid: int, args: str) -> None:
        child = self._proc(child_pid)
        child.cwd = parent.cwd if _CLONE_THREAD_FS.search(args) else list(parent.cwd)
        child.owner = parent.owner
        if parent.known and not child.known:
            self._learn(child_pid, child)

    def _learn(self, pid: int, p: _Proc) -> None:
        """`p`'s parent became known: replay what it did meanwhile (and its children's)."""
        p.known = True
        waiting, p.waiting = p.waiting, []
        for name, args, retpath in waiting:
            if name in CLONES:
                continue
            self._apply(pid, p, name, args, retpath)
        for other_pid, other in self.procs.items():
            if not other.known and other.owner is None and other is not p and \
                    other.cwd is p.cwd:
                self._learn(other_pid, other)

    # -- operations --------------------------------------------------------------------
    def _apply(self, pid: int, p: _Proc, name: str, args: str, retpath: str | None) -> None:
        if name in ("openat", "open", "openat2", "creat"):
            self._open(pid, p, name, args, retpath)
        elif name in ("rename", "renameat", "renameat2", "link", "linkat"):
            two = self._two_paths(p, name, args)
            if two is not None:
                old, new = two
                if name.startswith("rename"):
                    self._op(p, "D", old)
                self._op(p, "W", new)
        elif name in ("symlink", "symlinkat"):
            found = _PATHS.findall(args)
            if len(found) == 2:
                base = self._dirfd(p, args.split(", ", 2)[1]) if name == "symlinkat" else None
                self._op(p, "W", self._resolve(p, unescape(found[1]), base))
        elif name in ("unlink", "unlinkat", "truncate", "utimensat", "utime", "utimes"):
            one = self._one_path(p, name, args)
            if one is not None:
                path, flags = one
                if "AT_REMOVEDIR" not in flags:
                    self._op(p, "D" if name.startswith("unlink") else "W", path)
        elif name == "chdir":
            found = _PATHS.findall(args)
            if found:
                p.cwd[0] = self._resolve(p, unescape(found[0]), None)
        elif name == "fchdir":
            m = re.match(r"^-?\d+<((?:[^>\\]|\\.)*)>", args)
            if m:
                p.cwd[0] = unescape(m.group(1))

    def _open(self, pid: int, p: _Proc, name: str, args: str, retpath: str | None) -> None:
        if name == "creat":
            flags = "O_WRONLY|O_CREAT|O_TRUNC"
        else:
            m = (_OPEN if name == "open" else _OPENAT).match(args)
            if m is None:
                m2 = re.search(r"flags=([A-Z0-9_|]+)", args)  # openat2's struct
                if m2 is None:
                    return
                flags = m2.group(1)
            else:
                flags = m.group(m.lastindex or 1)
        if retpath is None or "O_DIRECTORY" in flags or "O_PATH" in flags:
            return
        path = unescape(retpath)
        if not path.startswith("/"):
            return  # a socket, a pipe, an anonymous file
        path = path.removesuffix(" (deleted)")
        if p.owner is None:
            if path.endswith(CLAIM) and "O_EXCL" in flags:
                p.owner = path[: -len(CLAIM)]  # task.sh claimed its attempt
                self.owners[p.owner] = pid
                self.ops.setdefault(p.owner, [])
            return
        mode = flags.split("|", 1)[0]
        if mode == "O_RDONLY":
            self._op(p, "R", path)
        elif mode == "O_RDWR" and "O_CREAT" not in flags and "O_TRUNC" not in flags:
            self._op(p, "RW", path)
        else:
            self._op(p, "W", path)

    def _op(self, p: _Proc, kind: str, path: str) -> None:
        if p.owner is not None:
            self.ops.setdefault(p.owner, []).append((kind, path))

    def _dirfd(self, p: _Proc, token: str) -> str | None:
        m = re.match(r"^(AT_FDCWD|-?\d+)(?:<((?:[^>\\]|\\.)*)>)?", token.strip())
        if m is None:
            return None
        return unescape(m.group(2)) if m.group(2) else (p.cwd[0] if m.group(1) == "AT_FDCWD"
                                                         else None)

    def _resolve(self, p: _Proc, path: str, base: str | None) -> str:
        if path.startswith("/"):
            return os.path.normpath(path)
        return os.path.normpath(os.path.join(base if base is not None else p.cwd[0], path))

    def _two_paths(self, p: _Proc, name: str, args: str) -> tuple[str, str] | None:
        if name in ("rename", "link"):
            found = _PATHS.findall(args)
            if len(found) < 2:
                return None
            return (self._resolve(p, unescape(found[0]), None),
                    self._resolve(p, unescape(found[1]), None))
        m = _TWO_AT.match(args)
        if m is None:
            return None
        d1 = unescape(m.group(2)) if m.group(2) else p.cwd[0]
        d2 = unescape(m.group(5)) if m.group(5) else p.cwd[0]
        return (self._resolve(p, unescape(m.group(3)), d1),
                self._resolve(p, unescape(m.group(6)), d2))

    def _one_path(self, p: _Proc, name: str, args: str) -> tuple[str, str] | None:
        if name in ("unlinkat", "utimensat"):
            m = _ONE_AT.match(args)
            if m is None:
                return None
            base = unescape(m.group(2)) if m.group(2) else p.cwd[0]
            return self._resolve(p, unescape(m.group(3)), base), m.group(4) or ""
        found = _PATHS.findall(args)
        if not found:
            return None
        return self._resolve(p, unescape(found[0]), None), ""

    @property
    def root_exited(self) -> bool:
        """The traced command itself (the log's first process) has exited: its record is
        complete."""
        return self._first is not None and self._first in self.exited

    def take(self, attempt_dir: str) -> list[tuple[str, str]]:
        """The attempt's operations so far, forgotten here (an attempt is read once)."""
        return self.ops.pop(attempt_dir, [])


class TraceFeed:
    """A strace log read as it grows: complete lines only, from where the last read ended."""

    def __init__(self, path: str, root_cwd: str = "") -> None:
        self.path = path
        self.state = TraceState(root_cwd)
        self._offset = 0
        self._rest = b""

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        if not data:
            return
        self._offset += len(data)
        data = self._rest + data
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]
        self.state.feed(data[:cut].decode("utf-8", "surrogateescape").splitlines())

    def read_all(self, wait: float = 0.0) -> TraceState:
        """Everything logged so far; with `wait`, first up to that many seconds for the
        traced command's exit to be logged (the tracer writes it a moment after the task's
        parent learns of it)."""
        end = time.monotonic() + wait
        self.poll()
        while not self.state.root_exited and time.monotonic() < end:
            time.sleep(0.001)
            self.poll()
        if self._rest:
            self.state.feed([self._rest.decode("utf-8", "surrogateescape")])
            self._rest = b""
        return self.state
