"""Plumbing shared by the Slurm and SGE bring-up code: commands, apt, locks, daemons.

Everything here runs commands with argv lists (never ``shell=True``), with stdin closed and a
timeout, and raises :class:`InfraError` carrying the full output when something goes wrong, so
that a CI failure says exactly which command failed and what it printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

LOCK_DIR = Path("/run/akoflow-infra")
LOG_DIR = Path("/var/log/akoflow-infra")

_apt_updated = False


class InfraError(RuntimeError):
    """A service could not be installed or started; ``str()`` includes the captured output."""


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60,
        env: Mapping[str, str] | None = None, input_text: str | None = None,
        cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (a list, no shell), capture its output, raise :class:`InfraError` on failure.

    Only for commands that exit: a daemon that forks into the background must be started with
    :func:`start_daemon`, because a forked child would keep the capture pipes open.
    """
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=full_env,
            input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL,
            cwd=cwd, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InfraError(f"timed out after {timeout}s: {' '.join(argv)}\n"
                         f"stdout: {_text(exc.stdout)}\nstderr: {_text(exc.stderr)}") from exc
    except OSError as exc:
        raise InfraError(f"cannot run {' '.join(argv)}: {exc}") from exc
    if check and proc.returncode != 0:
        raise InfraError(f"exit {proc.returncode}: {' '.join(argv)}\n"
                         f"stdout: {proc.stdout[-4000:]}\nstderr: {proc.stderr[-4000:]}")
    return proc


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")[-4000:]
    return data[-4000:]


def start_daemon(argv: Sequence[str], *, name: str, env: Mapping[str, str] | None = None,
                 timeout: float = 30) -> None:
    """Start a self-daemonizing program (it forks and its parent exits).

    Its output goes to ``/var/log/akoflow-infra/<name>.out`` rather than a pipe: a pipe would be
    held open by the daemon and block the caller. A non-zero exit of the parent is an error.
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    out = LOG_DIR / f"{name}.out"
    with out.open("ab") as fh:
        fh.write(f"\n=== {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
        fh.flush()
        try:
            proc = subprocess.run(
                list(argv), stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, timeout=timeout, start_new_session=True,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InfraError(f"cannot start {name}: {exc}\n{tail(out)}") from exc
    if proc.returncode != 0:
        raise InfraError(f"{' '.join(argv)} exited {proc.returncode}\n{tail(out)}")


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, labelled, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"[{path}: not readable]"
    return f"--- last lines of {path} ---\n" + "\n".join(text)


def wait_for(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.25,
             what: str = "condition", details: Callable[[], str] | None = None) -> None:
    """Poll ``predicate`` until true; :class:`InfraError` (with ``details()``) on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            extra = details() if details else ""
            raise InfraError(f"timed out after {timeout:.0f}s waiting for {what}\n{extra}")
        time.sleep(interval)


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``/run/akoflow-infra/<name>.lock``.

    Several pytest processes (xdist workers, two developers' sessions on one machine) may call
    ``ensure_*`` at once; installing packages and (re)starting daemons must be serialized.
    """
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with (LOCK_DIR / f"{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Atomically write ``text`` to ``path`` unless it holds exactly that; True if written."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)
    return True


def missing_commands(paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` (absolute paths or command names) that are not executable here."""
    missing = []
    for p in paths:
        if os.path.isabs(p):
            if not os.access(p, os.X_OK):
                missing.append(p)
        elif shutil.which(p) is None:
            missing.append(p)
    return missing


def apt_install(packages: Sequence[str], *, debconf: str = "", timeout: float = 900) -> None:
    """``apt-get install`` Debian packages non-interactively (``apt-get update`` once per process).

    ``debconf`` is a debconf-set-selections text applied first, so packages that ask questions
    get their answers without a terminal.
    """
    global _apt_updated
    if shutil.which("apt-get") is None:
        raise InfraError(f"apt-get not found: cannot install {' '.join(packages)} "
                         "(this infrastructure supports Debian/Ubuntu hosts only)")
    env = {"DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true",
           "NEEDRESTART_MODE": "a"}
    with file_lock("apt"):
        if debconf:
            run(["debconf-set-selections"], input_text=debconf, env=env)
        if not _apt_updated:
            run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"], env=env,
                timeout=timeout)
            _apt_updated = True
        with _no_service_start():
            run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                 "-o", "DPkg::Lock::Timeout=300",
                 "-o", "Dpkg::Options::=--force-confdef", "-o",
                 "Dpkg::Options::=--force-confold", *packages], env=env, timeout=timeout)


@contextlib.contextmanager
def _no_service_start() -> Iterator[None]:
    """Keep maintainer scripts from starting daemons (we start them ourselves, configured).

    Debian's ``invoke-rc.d`` asks ``/usr/sbin/policy-rc.d``; exit 101 means "do not start".
    Container images usually ship one; where there is none we put one in place for the
    duration of the install only.
    """
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():
        yield
        return
    policy.write_text("#!/bin/sh\n# temporary, akoflow tests/infra\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def pid_from_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_comm(pid: int) -> str | None:
    """``/proc/<pid>/comm`` (the kernel's short process name), None when no such live process."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    return None if state in ("Z", "X") else comm


def pids_named(comm: str) -> list[int]:
    """Live processes whose ``/proc/<pid>/comm`` is ``comm`` (comm is cut at 15 characters)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and proc_comm(int(entry.name)) == comm[:15]:
            found.append(int(entry.name))
    return sorted(found)


def proc_args(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def live_pid(pidfile: Path, comm: str) -> int | None:
    """The pid in ``pidfile`` if that process is alive and is ``comm``, else None."""
    pid = pid_from_file(pidfile)
    if pid is not None and proc_comm(pid) == comm[:15]:
        return pid
    return None


def kill_and_wait(pids: Sequence[int], *, timeout: float = 15) -> None:
    """SIGTERM the given pids, wait for them to go, SIGKILL what is left after ``timeout``."""
    pids = [p for p in pids if proc_comm(p) is not None]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in pids if proc_comm(p) is not None]
        if not pids:
            return
        time.sleep(0.1)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    wait_for(lambda: all(proc_comm(p) is None for p in pids), timeout=10,
             what=f"pids {pids} to die after SIGKILL")


def short_hostname() -> str:
    """This host's name as the schedulers see it (``hostname -s``)."""
    import socket
    return socket.gethostname().split(".")[0]
