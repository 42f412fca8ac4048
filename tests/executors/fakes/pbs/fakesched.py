"""The engine of the fake batch schedulers (PBS here, LSF reuses it): a JSON state file under a
file lock, a "tick" that reaps ended jobs and starts eligible ones, and detached shepherd
processes that run job scripts. Test scaffolding only: stdlib, Linux /proc, no daemon rights.

Layout of $FAKESCHED_HOME: state.json (+ lock), run/<unit>.json (shepherd specs and exit files),
server.pid. Every front-end command ticks; a small server process also ticks while jobs are
unfinished, standing in for the scheduler daemon that would react to a job's end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Job = dict[str, Any]
State = dict[str, Any]
ENGINE = Path(__file__).resolve()
HOST = "fakenode"


def home() -> Path:
    path = Path(os.environ.get("FAKESCHED_HOME") or Path.home() / ".fakesched")
    (path / "run").mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked() -> Iterator[State]:
    """The state, read and written back under an exclusive lock (one writer at a time)."""
    base = home()
    with open(base / "state.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = base / "state.json"
        state: State = json.loads(path.read_text()) if path.exists() else {"next": 100, "jobs": {}}
        yield state
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)


def new_id(state: State) -> str:
    jid = str(state["next"])
    state["next"] += 1
    return jid


# -- dependencies ------------------------------------------------------------------------------

def target_units(state: State, ref: str) -> list[Job] | None:
    """Units a dependency term names: `100` (whole job or array) or `100[3]` (one element)."""
    m = re.match(r"^(\d+)(?:\[(\d*)\])?", ref)
    if not m or m.group(1) not in state["jobs"]:
        return None
    units = state["jobs"][m.group(1)]["units"]
    if m.group(2):
        return [units[m.group(2)]] if m.group(2) in units else None
    return list(units.values())


def _ok(u: Job) -> bool:
    return u.get("code") == 0 and not u.get("signal") and not u.get("reason")


def term_status(state: State, kind: str, ref: str) -> str:
    """'yes' (satisfied), 'no' (never will be) or 'wait' for one term."""
    units = target_units(state, ref)
    if units is None:
        return "yes" if kind == "any" else "no"
    if kind == "started":
        return "yes" if any(u["state"] != "queued" for u in units) else "wait"
    if any(u["state"] != "done" for u in units):
        if kind == "ok" and any(u["state"] == "done" and not _ok(u) for u in units):
            return "no"
        return "wait"
    good = all(_ok(u) for u in units)
    return {"ok": "yes" if good else "no", "any": "yes",
            "notok": "no" if good else "yes"}[kind]


def deps_status(state: State, deps: Job | None) -> str:
    if not deps:
        return "yes"
    found = [term_status(state, kind, ref) for kind, ref in deps["terms"]]
    if deps["op"] == "or":
        return "yes" if "yes" in found else ("no" if all(f == "no" for f in found) else "wait")
    return "no" if "no" in found else ("yes" if all(f == "yes" for f in found) else "wait")


# -- the tick ----------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reap(unit: Job) -> None:
    exit_file = Path(unit["spec"]).with_suffix(".exit")
    if exit_file.exists():
        unit.update(json.loads(exit_file.read_text()), state="done", end=time.time())
    elif not _alive(unit["pid"]):  # the shepherd died without a word: the job is lost
        unit.update(state="done", end=time.time(), code=None, signal=9, reason="lost")


def _start(job: Job, idx: str, unit: Job) -> None:
    spec = home() / "run" / f"{job['id']}.{idx or 0}.json"
    spec.with_suffix(".exit").unlink(missing_ok=True)
    spec.write_text(json.dumps({k: unit[k] for k in ("argv", "env", "cwd", "out", "err")}
                               | {"walltime": job.get("walltime")}))
    log = open(home() / "run" / "shepherd.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, str(ENGINE), "shepherd", str(spec)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, close_fds=True)
    log.close()
    unit.update(state="running", pid=proc.pid, spec=str(spec), start=time.time(), host=HOST)


def tick(state: State, on_never: Callable[[Job], None]) -> None:
    """Reap ended units, then start every eligible queued unit the slots allow."""
    now = time.time()
    running = 0
    for job in state["jobs"].values():
        for unit in job["units"].values():
            if unit["state"] == "running":
                _reap(unit)
                running += unit["state"] == "running"
    slots = int(os.environ.get("FAKESCHED_SLOTS", "8"))
    for job in sorted(state["jobs"].values(), key=lambda j: int(j["id"])):
        queued = [(i, u) for i, u in job["units"].items() if u["state"] == "queued"]
        if not queued or job.get("hold") or (job.get("after") or 0) > now:
            continue
        verdict = deps_status(state, job.get("deps"))
        job["dep_state"] = verdict
        if verdict == "no":
            on_never(job)
            continue
        if verdict != "yes":
            continue
        active = sum(u["state"] == "running" for u in job["units"].values())
        for idx, unit in queued:
            if running >= slots or (job.get("throttle") and active >= job["throttle"]):
                break
            _start(job, idx, unit)
            running += 1
            active += 1


def finish_queued(job: Job, reason: str) -> None:
    """End the units that never started (deleted, or a dependency that can never hold)."""
    for unit in job["units"].values():
        if unit["state"] == "queued":
            unit.update(state="done", code=None, signal=None, reason=reason, end=time.time())


def kill(job: Job, units: list[Job]) -> None:
    """qdel/bkill: queued units end at once; running ones get SIGTERM via their shepherd."""
    for unit in units:
        if unit["state"] == "queued":
            unit.update(state="done", code=None, signal=None, reason="deleted", end=time.time())
        elif unit["state"] == "running":
            unit["deleting"] = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(unit["pid"], signal.SIGTERM)


def unfinished(state: State) -> bool:
    return any(u["state"] != "done" for j in state["jobs"].values() for u in j["units"].values())


# -- the server (ticks while work remains) and the shepherd (runs one unit) ----------------------

def ensure_server(on_never_name: str) -> None:
    pidfile = home() / "server.pid"
    try:
        if _alive(int(pidfile.read_text())):
            return
    except (OSError, ValueError):
        pass
    proc = subprocess.Popen([sys.executable, str(ENGINE), "server", on_never_name],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    pidfile.write_text(str(proc.pid))


NEVER_POLICIES: dict[str, Callable[[Job], None]] = {
    "delete": lambda job: finish_queued(job, "dependency"),  # PBS deletes such dependants
    "keep": lambda job: None,  # LSF leaves them pending ("never satisfied")
}


def server(policy: str) -> None:
    with open(home() / "server.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another server ticks already
        (home() / "server.pid").write_text(str(os.getpid()))
        idle_since = time.time()
        while time.time() - idle_since < 3:
            with locked() as state:
                tick(state, NEVER_POLICIES[policy])
                if unfinished(state):
                    idle_since = time.time()
            time.sleep(0.25)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _kill_tree(root: int, grace: float, proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _descendants(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            proc.wait(timeout=grace)
            if sig == signal.SIGTERM:
                time.sleep(0.2)  # let orphans of the job react to their own SIGTERM
        except subprocess.TimeoutExpired:
            continue


def shepherd(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    for key in ("out", "err"):
        Path(spec[key]).parent.mkdir(parents=True, exist_ok=True)
    why: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: why.append("deleted"))
    with open(spec["out"], "ab") as out, open(spec["err"], "ab") as err:
        proc = subprocess.Popen(spec["argv"], env=spec["env"], cwd=spec["cwd"], stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.time() + spec["walltime"] if spec.get("walltime") else None
    grace = float(os.environ.get("FAKESCHED_KILL_GRACE", "3"))
    while proc.poll() is None:
        if why or (deadline and time.time() > deadline):
            why.append("walltime")
            _kill_tree(proc.pid, grace, proc)
            break
        time.sleep(0.05)
    rc = proc.wait()
    result = {"code": rc if rc >= 0 else None, "signal": -rc if rc < 0 else None,
              "reason": why[0] if why else None}
    tmp = Path(spec_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(Path(spec_path).with_suffix(".exit"))


def shutdown() -> None:
    """Test teardown: kill every running unit and the server."""
    with locked() as state:
        for job in state["jobs"].values():
            kill(job, list(job["units"].values()))
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((home() / "server.pid").read_text()), signal.SIGTERM)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "shepherd":
        shepherd(sys.argv[2])
    elif mode == "server":
        server(sys.argv[2])
    elif mode == "shutdown":
        shutdown()
