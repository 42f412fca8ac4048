"""The files of one pilot: the only channel between the dispatcher and an allocation's agent.

A pilot is one agent (executors/pilot_agent.py) on one node of an allocation. Its directory:

    <run_dir>/pilots/<job id>.<node index>/
        state.json   the agent's announcement and heartbeat (rewritten whole): allocation,
                     node, cpus, memory, deadline, status running | draining | ended
        queue        attempt directories to run, one per line, in order; appended only by
                     the dispatcher, which is the one writer of the manifest (it holds the
                     workflow's dispatch lock); `-<dir>` takes one back that the pilot
                     refused or never started (it is someone else's from then on)
        events       appended only by the agent, one line per fact, tab-separated:
                     R <dir> <ts> <node>    the task started (its pid is in its attempt dir)
                     E <dir> <outcome>      it ended; the outcome as result.json holds it
                     K <dir> <ts>           the agent killed it: its allocation was ending
                     X <dir> <why>          refused, never started (no walltime left, drained)
                     C <dir> <ts>           stopped by a cancel
        cancel/<n>   an attempt to stop (n: its directory's name); anyone may create one
        stop         from the dispatcher: start nothing more, end when idle

Appends are whole lines written at once and files are reopened on every read, so a reader on
another node of a network file system sees what the writer closed (close-to-open). Nothing
here forks, locks or opens the manifest: both sides are plain file readers and writers.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from akoflow.port import protocol
from akoflow.port.records import AttemptOutcome

PILOTS = "pilots"
STATE = "state.json"
QUEUE = "queue"
EVENTS = "events"
CANCEL = "cancel"
STOP = "stop"
STARTED, ENDED, KILLED, REFUSED, CANCELLED = "R", "E", "K", "X", "C"
TAKEN_BACK = "-"  # a queue line's prefix: no longer this pilot's
RUNNING, DRAINING, GONE = "running", "draining", "ended"
_UNSAFE = re.compile(r"[^A-Za-z0-9.@-]")


def pilots_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / PILOTS


def pilot_name(job_id: str, index: int) -> str:
    """`<job id>.<node index>`: the allocation's id keeps its pilots together (a character a
    file name should not hold, such as the `ƒ` of Flux ids, is spelled `_<hex>`; state.json
    keeps the id as the scheduler spells it)."""
    safe = _UNSAFE.sub(lambda m: f"_{ord(m.group()):x}", job_id)
    if not safe or len(safe) > 100:
        raise ValueError(f"job id {job_id!r} cannot name a pilot directory")
    return f"{safe}.{index}"


def run_dir_of(attempt_dir: str | Path) -> Path:
    """`<run_dir>/activities/<activity>.<n>` → `<run_dir>`."""
    return Path(attempt_dir).parent.parent


@dataclass
class PilotState:
    """What an agent says of itself in state.json."""

    pilot: str
    job_id: str
    node: str
    cpus: float
    memory: int
    started: float
    deadline: float  # when its allocation ends (the agent drains a margin before)
    beat: float
    status: str = RUNNING
    pid: int = 0
    host: str = ""

    @classmethod
    def of(cls, data: dict[str, Any]) -> PilotState:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


def write_state(directory: Path, state: PilotState) -> None:
    """Whole or not at all (temp file + rename); no fsync: a heartbeat lost in a crash
    is told by the scheduler's listing."""
    tmp = directory / f".{STATE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(asdict(state), separators=(",", ":")))
    os.replace(tmp, directory / STATE)


def read_state(directory: Path) -> PilotState | None:
    try:
        return PilotState.of(json.loads((directory / STATE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def append(path: Path, lines: list[str]) -> None:
    """Add whole lines with one write; the file is closed at once, so a reader that opens
    it later sees them, also across nodes."""
    if not lines:
        return
    data = "".join(f"{line}\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


class Tail:
    """The complete lines another process appended to a file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def lines(self) -> list[str]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            if os.fstat(fd).st_size <= self.offset:
                return []
            os.lseek(fd, self.offset, os.SEEK_SET)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        return data[:end].decode(errors="replace").splitlines()


def event(kind: str, attempt_dir: str, *fields: object) -> str:
    return "\t".join([kind, attempt_dir, *(str(f) for f in fields)])


def parse_event(line: str) -> tuple[str, str, str]:
    """(kind, attempt dir, the rest) of one events line; kind "" when it is not one."""
    kind, _, rest = line.partition("\t")
    adir, _, tail = rest.partition("\t")
    if len(kind) != 1 or not adir:
        return "", "", ""
    return kind, adir, tail


def outcome_text(o: AttemptOutcome) -> str:
    return json.dumps(protocol.outcome_to_json(o), separators=(",", ":"))


def outcome_of(text: str, attempt_dir: str) -> AttemptOutcome | None:
    """An E line's outcome, with the attempt's stdout/stderr tails (as read_result does)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    o = protocol.outcome_from_json(data)
    protocol.attach_streams(Path(attempt_dir), o)
    return o


def cancel_marks(directory: Path) -> list[str]:
    """Names of the attempt directories whose cancel was asked for (the marks stay: a mark
    for an attempt that already ended is harmless)."""
    try:
        return os.listdir(directory / CANCEL)
    except FileNotFoundError:
        return []


def mark_cancel(directory: Path, attempt_dir: str) -> None:
    (directory / CANCEL).mkdir(exist_ok=True)
    (directory / CANCEL / Path(attempt_dir).name).touch()
