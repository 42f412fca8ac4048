"""The worker protocol: the files of one attempt directory, each written atomically.

    <run_dir>/activities/<activity>.<attempt>/
        task.sh            the user's `run` text with akoflow's prologue (bash); its
                           header line holds what `akoflow worker` and repair need
        pid                written by task.sh itself, first thing (crash repair: "did it
                           start?"); its EXIT trap appends the exit code and bash `times`
                           (survives a dead dispatcher; older versions wrote `exitcode`)
        stdout, stderr
        metrics.jsonl      psutil samples, appended while the task runs (in-job worker)
        result.json        written last, by temp file + rename

Workers never open the manifest: the dispatcher ingests these files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from akoflow.port.executor import TaskLaunch
from akoflow.port.names import ident
from akoflow.port.records import AttemptOutcome, FileEntry, MetricSample

R = TypeVar("R", MetricSample, FileEntry)

TASK_SH = "task.sh"
TASK_HEADER = "# akoflow-task: "
PID = "pid"
EXITCODE = "exitcode"  # only attempts of older versions have it: now in the pid file
_TIMES = re.compile(r"(\d+)m(\d+[.,]?\d*)s")  # bash `times`: 0m0.004s (0m0,004s in pt_BR)
STDOUT = "stdout"
STDERR = "stderr"
METRICS = "metrics.jsonl"
RESULT = "result.json"
TAIL_BYTES = 4096
DUPLICATE_EXIT = 111  # task.sh refused to start: the attempt was already claimed


def attempt_dir(run_dir: str | Path, activity: str, number: int) -> Path:
    """One directory per attempt, `<activity ident>.<attempt>`: a single `mkdir` (a metadata
    round trip on Lustre/GPFS, a journal transaction on ext4) rather than two. Unambiguous:
    attempt numbers have no dot, so the last dot splits the name."""
    return Path(run_dir) / "activities" / f"{ident(activity)}.{number}"


def job_name(workflow_id: int, activity: str, number: int) -> str:
    """Unique, scheduler-safe job name (the activity's identifier, not its name as written);
    also the key for crash repair lookups."""
    return f"akoflow.{workflow_id}.{ident(activity)}.{number}"


def cgroup_leaf(attempt_dir: str | os.PathLike[str]) -> str:
    """The attempt's cgroup name (worker/leftovers.py): fixed by its directory, so task.sh
    can name it and any later dispatcher finds it again."""
    digest = hashlib.sha1(os.fsencode(os.fspath(attempt_dir))).hexdigest()[:24]
    return f"a{digest}"


def task_env(launch: TaskLaunch) -> dict[str, str]:
    """The `AKOFLOW_*` variables every task sees, plus the activity's own `env`."""
    res = launch.resources
    env = {
        "AKOFLOW_WORKFLOW": launch.workflow,
        "AKOFLOW_WORKFLOW_ID": str(launch.workflow_id),
        "AKOFLOW_ACTIVITY": launch.activity,
        "AKOFLOW_ACTIVITY_ID": str(launch.activity_id),
        "AKOFLOW_ATTEMPT": str(launch.attempt),
        "AKOFLOW_WORKDIR": str(launch.work_dir),
        "AKOFLOW_ATTEMPT_DIR": str(launch.attempt_dir),
        "AKOFLOW_RUN_DIR": str(launch.run_dir),
        "AKOFLOW_CPUS": _num(res.cpu),
    }
    if res.memory:
        env["AKOFLOW_MEMORY"] = str(res.memory)
    if launch.mount_path:
        env["AKOFLOW_MOUNT_PATH"] = launch.mount_path
    env.update(launch.env)
    return env


def task_info(launch: TaskLaunch) -> dict[str, Any]:
    """What `akoflow worker` and crash repair need to know, kept in task.sh's header."""
    return {
        "workflow_id": launch.workflow_id,
        "workflow": launch.workflow,
        "activity": launch.activity,
        "attempt": launch.attempt,
        "work_dir": str(launch.work_dir),
        "sample_interval": launch.sample_interval,
        "resources": launch.resources.to_json(),
        "image": launch.image,
        "wrapper": launch.wrapper,
        **({"observe": launch.observe} if launch.observe else {}),
    }


def observation(launch: TaskLaunch, site: Mapping[str, Any]) -> dict[str, Any]:
    """What the worker side needs to observe a task's file operations: whether to trace
    (the site's `trace:`; unset = when possible), the data directories besides the work
    directory (volumes, the site's `data_roots`), and how paths inside a container map to
    the host (mount path -> work directory, each volume)."""
    roots = [h for h, _ in launch.volumes] + [str(r) for r in site.get("data_roots") or []]
    mounts = [[t, h] for h, t in launch.volumes]
    if launch.mount_path:
        mounts.append([launch.mount_path, str(launch.work_dir)])
    out: dict[str, Any] = {}
    if site.get("trace") is not None:
        out["trace"] = site.get("trace")
    if roots:
        out["roots"] = roots
    if mounts:
        out["mounts"] = mounts
    return out


def render_task_script(launch: TaskLaunch, *, work_dir: str | None = None) -> str:
    """task.sh: records its pid and exit code itself, so a dead dispatcher loses nothing."""
    d = shlex.quote(str(launch.attempt_dir))
    lines = [
        "#!/bin/bash",
        f"# akoflow task {ident(launch.workflow)}/{ident(launch.activity)} attempt "
        f"{launch.attempt}",
        f"{TASK_HEADER}{json.dumps(task_info(launch), separators=(',', ':'))}",
        f"_akoflow_dir={d}",
        # Claim the attempt atomically (noclobber = O_EXCL): a second start of the same
        # attempt, e.g. by a dispatcher repairing a crash, exits at once without running.
        # The claim's descriptor stays open (bash picks one >= 10) for the exit record
        # below: under syscall tracing every open a task makes costs, and these run for
        # every task (so also `2>&-`, not `2>/dev/null`: no file to open).
        'set -C',
        '{ exec {_akoflow_fd}>"$_akoflow_dir/pid"; } 2>&- || exit 111',
        'set +C',
        # $BASHPID, not $$: the same in `bash task.sh`, but right when the launcher sources
        # task.sh in a subshell.
        'printf "%s\\n" "$BASHPID" >&"$_akoflow_fd"',
        # Join the attempt's cgroup (made by whoever starts the task, where cgroups are
        # available): what the task starts stays there even if it leaves its process group.
        '[ -z "${AKOFLOW_CGROUP_ROOT-}" ] || { printf "%s\\n" "$BASHPID" >'
        f' "$AKOFLOW_CGROUP_ROOT/{cgroup_leaf(launch.attempt_dir)}/cgroup.procs"; }}'
        ' 2>&- || :',
        # The exit code, then `times` (CPU of the task's shell and its children), after the
        # pid in the pid file: one file per attempt fewer to create. Trapping TERM/INT/HUP
        # makes a signalled task record 128+n instead of nothing.
        "trap '_akoflow_rc=$?; { printf \"%s\\n\" \"$_akoflow_rc\"; times; }"
        " >&\"$_akoflow_fd\"' EXIT",
        "trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in task_env(launch).items()]
    lines += [
        "set -eo pipefail",
        f"cd {shlex.quote(work_dir or str(launch.work_dir))}",
    ]
    # `standalone` storage: the parents' outputs are copied into this activity's own volume.
    lines += [f"cp -a {shlex.quote(str(src))}/. ." for src in launch.inputs]
    script = launch.script.rstrip("\n")
    if launch.wrapper:
        lines.append(shlex.join([*launch.wrapper, "bash", "-eo", "pipefail", "-c", script]))
    else:
        lines.append(script)
    lines.append("")
    return "\n".join(lines)


def prepare_attempt(launch: TaskLaunch) -> None:
    """Create the attempt directory with task.sh (before submission).

    One `mkdir` in the common case, one file (written under a temporary name, then
    renamed): on a parallel file system every metadata operation counts, thousands of
    times per workflow.
    """
    path = str(launch.attempt_dir)
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:  # the first attempt of the run: activities/ is missing too
        os.makedirs(path, exist_ok=True)
    # Temp file + rename: a dispatcher killed mid-write must never leave a truncated
    # task.sh that a later dispatcher would start (and see "succeed" without the user's text).
    tmp = os.path.join(path, f".{TASK_SH}.tmp")
    with open(tmp, "w") as fh:
        fh.write(render_task_script(launch))
    os.replace(tmp, os.path.join(path, TASK_SH))


def read_task(directory: Path) -> dict[str, Any]:
    """The task description from task.sh's header line ({} if unreadable)."""
    try:
        with open(directory / TASK_SH) as fh:
            for _ in range(3):
                line = fh.readline()
                if line.startswith(TASK_HEADER):
                    info: dict[str, Any] = json.loads(line[len(TASK_HEADER):])
                    return info
    except (OSError, ValueError):
        pass
    return {}


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def outcome_to_json(o: AttemptOutcome) -> dict[str, Any]:
    return {
        "version": 1,
        "exit_code": o.exit_code,
        "reason": o.reason,
        "started_at": o.started_at,
        "finished_at": o.finished_at,
        "node": o.node,
        "cpu_time": o.cpu_time,
        "peak_rss": o.peak_rss,
        "image_id": o.image_id,
        "message": o.message,
        "metrics": [wire(m) for m in o.metrics],
        "files": [wire(f) for f in o.files],
    }


def write_result(directory: Path, o: AttemptOutcome) -> None:
    """result.json, last and atomically: its presence means the attempt is over."""
    write_atomic(directory / RESULT, json.dumps(outcome_to_json(o), separators=(",", ":")))


def read_result(directory: Path) -> AttemptOutcome | None:
    """The attempt's result.json with stdout/stderr tails, or None if not written (yet)."""
    try:
        data = json.loads((directory / RESULT).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    o = outcome_from_json(data)
    if not o.metrics:
        o.metrics = read_metrics(directory)
    attach_streams(directory, o)
    return o


def outcome_from_json(data: Mapping[str, Any]) -> AttemptOutcome:
    """An outcome from `outcome_to_json`'s form (result.json, a pilot's E line)."""
    return AttemptOutcome(
        exit_code=data.get("exit_code"), reason=data.get("reason"),
        started_at=data.get("started_at"), finished_at=data.get("finished_at"),
        node=data.get("node"), cpu_time=data.get("cpu_time"), peak_rss=data.get("peak_rss"),
        image_id=data.get("image_id"), message=data.get("message"),
        metrics=[from_wire(MetricSample, m) for m in data.get("metrics") or []],
        files=[from_wire(FileEntry, row) for row in data.get("files") or []])


def _wired(cls: type[MetricSample] | type[FileEntry]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("wire", True)]


def wire(record: MetricSample | FileEntry) -> list[Any]:
    """A sample or file entry in its compact file form: its fields' values in field order."""
    return [getattr(record, name) for name in _wired(type(record))]


def from_wire(cls: type[R], row: Sequence[Any]) -> R:
    """The record `wire` wrote. A row shorter than the fields (a file entry written before
    a field was added) leaves the rest at their defaults; a longer one is a newer writer's,
    whose extra values are dropped; too short for the required fields is a TypeError."""
    return cls(**dict(zip(_wired(cls), row, strict=False)))


def read_metrics(directory: Path) -> list[MetricSample]:
    out: list[MetricSample] = []
    try:
        with open(directory / METRICS) as fh:
            for line in fh:
                try:
                    out.append(from_wire(MetricSample, json.loads(line)))
                except (ValueError, TypeError):
                    continue  # a line cut short by a kill
    except FileNotFoundError:
        pass
    return out


def attach_streams(directory: Path, o: AttemptOutcome) -> None:
    d = str(directory)  # plain strings: this runs once per task, thousands of times
    o.stdout_path = f"{d}/{STDOUT}"
    o.stderr_path = f"{d}/{STDERR}"
    o.stdout_tail = tail(o.stdout_path)
    o.stderr_tail = tail(o.stderr_path)


def read_int(path: Path) -> int | None:
    """An integer file written by task.sh; None when absent or not complete yet."""
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None
    first, newline, _ = text.partition("\n")  # the pid file carries more lines after it
    if not newline:
        return None
    try:
        return int(first)
    except ValueError:
        return None


# What a script can do that would tell a forked subshell from a fresh bash (see
# executors/launcher.py): read the shell's identity, return from the top level, or run code
# we cannot see (source, `.`, eval) that might. Like make's "no shell needed" fast path, any
# match, however unlikely a false alarm, just takes the slower, exact route.
_SHELL_IDENTITY = re.compile(
    r"\$\$|\$\{\$|\$\{#?\$\}|PPID|BASH_SUBSHELL|BASH_EXECUTION_STRING|BASH_ARGV|BASH_ARGC"
    r"|BASH_LINENO|BASH_COMMAND|\breturn\b|\bsource\b|\beval\b|\bcaller\b"
    r"|(^|[;&|(){}!]|\bthen|\bdo|\belse)\s*\.\s", re.MULTILINE)


def needs_fresh_shell(script: str) -> bool:
    """True if the task's text could behave differently in a subshell forked from the
    launcher than in `bash task.sh` (`$$` would be the launcher's pid, and so on)."""
    return bool(_SHELL_IDENTITY.search(script))


def read_exit(directory: str | Path) -> tuple[int | None, float | None]:
    """Exit code and CPU seconds of an attempt's task, or (None, None) while it runs.

    task.sh's EXIT trap appends them to the pid file: line 2 the exit code, lines 3-4 bash
    `times` (the shell's user/system time, then its children's). Attempts made by older
    versions wrote the exit code to a file of its own, still read here."""
    lines = _read_text(f"{directory}/{PID}").split("\n")
    if len(lines) < 3:
        lines = ["", *_read_text(f"{directory}/{EXITCODE}").split("\n")]
        if len(lines) < 3:
            return None, None
    try:
        rc = int(lines[1])
    except ValueError:
        return None, None
    found = _TIMES.findall(" ".join(lines[2:4])) if len(lines) >= 5 else []
    cpu = (sum(int(m) * 60 + float(s.replace(",", ".")) for m, s in found)
           if len(found) == 4 else None)
    return rc, cpu


def _read_text(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return ""
    try:
        return os.read(fd, 4096).decode(errors="replace")
    finally:
        os.close(fd)


def tail(path: str | Path, limit: int = TAIL_BYTES) -> str:
    try:
        if os.stat(path).st_size == 0:
            return ""
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _num(v: object) -> str:
    f = float(v)  # type: ignore[arg-type]
    return str(int(f)) if f.is_integer() else str(f)
