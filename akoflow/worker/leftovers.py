"""An attempt ends with its processes: what a task leaves running is stopped when it ends.

A task runs in a process group of its own (pgid = its pid), so `killpg` reaches everything
it started in the background (`sleep 1000 &`), whether the task succeeded, failed, timed out
or was found over by a dispatcher after a crash. That happens before the outcome is
reported, so a retry of the same activity never runs beside its failed attempt's leftovers.

A process that leaves the group (`setsid`, a daemon's double fork) is out of `killpg`'s
reach. Where this process may create a cgroup (cgroup v2, as root or with a delegated
subtree, e.g. systemd's user delegation), each attempt also gets one: task.sh moves itself
into `<root>/<leaf>` before the user's command runs, descendants stay there whatever they
do to their sessions, and `cgroup.kill` ends all of them. Without cgroups a task that
daemonizes escapes (README, Limits). Leftovers get SIGKILL, as Slurm gives what is left of a
batch job when its script exits.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from functools import lru_cache

from akoflow.port import protocol

log = logging.getLogger(__name__)
ROOT_ENV = "AKOFLOW_CGROUP_ROOT"  # set for tasks: where their attempt's cgroup lives
SWITCH_ENV = "AKOFLOW_CGROUPS"  # "0"/"no"/"off" turns cgroups off (site key `cgroups:`)
_unremoved: set[str] = set()  # cgroups whose processes were still dying when we tried


@lru_cache(maxsize=1)
def cgroup_root() -> str | None:
    """A cgroup v2 directory this process may create attempt cgroups in, or None."""
    if os.environ.get(SWITCH_ENV, "1").lower() in ("0", "no", "false", "off"):
        return None
    inherited = os.environ.get(ROOT_ENV)
    if inherited and os.access(inherited, os.W_OK):
        return inherited  # a worker inside a job of ours: reuse its parent's choice
    own = _own_cgroup()
    mount = _cgroup2_mount()
    if own is None or mount is None:
        return None
    root = os.path.join(mount + own.rstrip("/"), f"akoflow-{os.getuid()}")
    try:
        os.mkdir(root)
    except FileExistsError:
        pass
    except OSError:
        return None
    if not (os.access(root, os.W_OK) and os.path.exists(os.path.join(root, "cgroup.procs"))):
        return None
    return root


def _own_cgroup() -> str | None:
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                hierarchy, _, rest = line.rstrip("\n").partition(":")
                if hierarchy == "0":
                    return rest.partition(":")[2] or "/"
    except OSError:
        pass
    return None


def _cgroup2_mount() -> str | None:
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "cgroup2":
                    return parts[1].replace("\\040", " ")
    except OSError:
        pass
    return None


def prepare(root: str | None, attempt_dir: str | os.PathLike[str]) -> None:
    """Create the attempt's cgroup under `root` (task.sh joins it); no-op without one."""
    if root is not None:
        try:
            os.mkdir(os.path.join(root, protocol.cgroup_leaf(attempt_dir)))
        except FileExistsError:
            pass
        except OSError as exc:
            log.debug("no cgroup for %s: %s", attempt_dir, exc)


def stop(root: str | None, attempt_dir: str | os.PathLike[str], pgid: int, *,
         verify: bool = False) -> None:
    """SIGKILL whatever is left of the attempt: its process group and its cgroup.

    `verify` is for a group whose leader may have ended long ago (a dispatcher finding the
    attempt over after a crash): its pgid could have been reused, so only members whose
    environment names this attempt are killed."""
    if pgid > 0:
        if verify:
            _kill_verified(pgid, os.fspath(attempt_dir))
        else:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    if root is not None:
        path = os.path.join(root, protocol.cgroup_leaf(attempt_dir))
        _kill_cgroup(path)
        _remove(path)
    for path in list(_unremoved):  # earlier ones whose processes have died by now
        _remove(path)


def _kill_cgroup(path: str) -> None:
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as fh:
            fh.write("1")
        return
    except FileNotFoundError:
        if not os.path.isdir(path):
            return
    except OSError:
        pass
    try:  # a kernel before 5.14: no cgroup.kill
        with open(os.path.join(path, "cgroup.procs")) as fh:
            pids = [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _remove(path: str) -> None:
    try:
        os.rmdir(path)
        _unremoved.discard(path)
    except FileNotFoundError:
        _unremoved.discard(path)
    except OSError:  # EBUSY: killed processes not reaped yet; try again later
        _unremoved.add(path)


def _kill_verified(pgid: int, attempt_dir: str) -> None:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return  # nothing left (the common case): no scan
    import psutil

    marker = f"AKOFLOW_ATTEMPT_DIR={attempt_dir}"
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) != pgid:
                continue
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                env = fh.read().decode(errors="surrogateescape").split("\0")
            if marker in env:
                os.kill(proc.pid, signal.SIGKILL)
        except (OSError, psutil.Error):
            continue


def sweep(min_age: float = 600.0) -> None:
    """Remove empty attempt cgroups older than `min_age` seconds (left by dispatchers that
    died); a younger one may belong to a task another dispatcher is starting right now."""
    root = cgroup_root()
    if root is None:
        return
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        try:
            if entry.name.startswith("a") and now - entry.stat().st_mtime > min_age:
                os.rmdir(entry.path)
        except OSError:
            pass  # populated: a running task of another dispatcher


def tasks_env(env: dict[str, str], wanted: bool) -> str | None:
    """Point the tasks started with `env` at our cgroup root (None: there is none, or the
    site said `cgroups: false`; their process group then ends them), sweeping old ones."""
    root = cgroup_root() if wanted else None
    if root is not None:
        env[ROOT_ENV] = root
        sweep()
    else:
        env.pop(ROOT_ENV, None)
    return root
