"""Syscall tracing of a task's whole process tree with `strace -f`, unprivileged.

Why strace: it is ptrace-based, so it needs no root and no CAP_SYS_ADMIN (fanotify and eBPF
do), it sees every process of the tree whatever it does to its session, static binaries and
raw syscalls included (an LD_PRELOAD shim would not), and it is in Debian and on most
clusters. `--seccomp-bpf` makes only the file syscalls below stop the task, so the rest of
what it does runs at full speed. README, "Exact lineage", has the measurements and limits.

`-y` prints each file descriptor with its path (so relative paths and `openat(dirfd, ...)`
resolve without tracking every `open`), `-z` only successful calls, `-q` no attach
messages (but the `+++ exited` lines, which tell when a process's record is complete).
`-DD` runs the tracer as a detached grandchild in a process group of its own: the task stays
the direct child of whoever started it (exit status and the kernel's rusage are the task's,
not strace's), a task's end is its own exit, not the end of everything it left running, and
killing the task's process group leaves the tracer to finish its log.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from functools import lru_cache

log = logging.getLogger(__name__)
SWITCH_ENV = "AKOFLOW_TRACE"  # 0/off/false: snapshots instead (the site key `trace:`)
BINARY_ENV = "AKOFLOW_STRACE"  # a strace to use instead of the one on PATH
TRACE_FILE = "trace.strace"  # in the attempt directory, when the worker traces one task
# `?name`: not an error on an architecture without that syscall (aarch64 has no open()).
SYSCALLS = (
    "openat", "?open", "?openat2", "?creat", "?rename", "renameat", "?renameat2",
    "?unlink", "unlinkat", "truncate", "?link", "linkat", "?symlink", "symlinkat",
    "utimensat", "?utime", "?utimes", "chdir", "fchdir",
    "?clone", "?clone3", "?fork", "?vfork",
)


def wanted(setting: object = None) -> bool:
    """Whether tracing is asked for: a site's `trace:` (None = auto) under the switch."""
    if os.environ.get(SWITCH_ENV, "").lower() in ("0", "off", "false", "no"):
        return False
    return setting is None or str(setting).lower() not in ("0", "off", "false", "no")


def binary() -> str | None:
    return os.environ.get(BINARY_ENV) or shutil.which("strace")


@lru_cache(maxsize=4)
def unavailable(strace: str | None = None) -> str | None:
    """Why tracing cannot work here (no strace, ptrace refused, no seccomp), or None.
    Probed once per process by tracing `true`."""
    strace = strace or binary()
    if strace is None:
        return "strace is not installed (apt install strace, or `module load strace`)"
    true = shutil.which("true") or "/bin/true"
    try:
        proc = subprocess.run([strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=openat",
                               "-o", os.devnull, true], capture_output=True, text=True,
                              timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{strace} cannot run: {exc}"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return f"{strace} cannot trace here: {why}"
    return None


def argv(log_path: str, strace: str | None = None) -> list[str]:
    """The strace prefix that traces a command's tree into `log_path`."""
    return [strace or binary() or "strace", "-DD", "-f", "-y", "-x", "-z", "-q",
            "-e", "signal=none",
            "--seccomp-bpf", "-e", "trace=" + ",".join(SYSCALLS), "-o", log_path]


def available(setting: object = None) -> bool:
    """Tracing asked for and possible; says once why not when it was asked for."""
    if not wanted(setting):
        return False
    why = unavailable()
    if why is not None:
        _warn_once(why)
        return False
    return True


@lru_cache(maxsize=8)
def _warn_once(why: str) -> None:
    log.warning("file lineage falls back to snapshots: %s", why)
