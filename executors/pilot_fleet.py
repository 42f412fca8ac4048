"""The pilots of one workflow as its dispatcher sees them: which has room, what each runs.

Everything here is read from the pilots' files (executors/pilot_files.py), so a dispatcher
started after another one died rebuilds the same picture: every queue line is an
assignment, every events line a fact. Attempts wait in a backlog until a pilot has room
(cpus and memory, with a prefetch of queued work so a freed slot is refilled at once) and
walltime for their `timeLimit`; they are then appended to that pilot's queue, and never to
another's while it may still start them.

When a pilot's allocation is over its unfinished attempts are judged by their files:
- an attempt it refused, or never started while it ended cleanly, waits for another pilot;
- an attempt it never started but might have (it died) is claimed first (task.sh's pid
  claim) and withdrawn: a new attempt runs it, no retry is used;
- an attempt that recorded its exit code is settled by it (recovered, as after any crash);
- one killed by the end of its allocation, or dead without an exit code, runs again as a
  new attempt without using a retry (ALLOCATION_ENDED; the manifest bounds how often).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from akoflow.port import ALLOCATION_ENDED, JobState, JobStatus, Resources, protocol
from akoflow.port.records import AttemptOutcome

from . import pilot_files as pf
from .local_groups import claim_for_cancel
from .pilot_agent import SIGNALLED

log = logging.getLogger(__name__)
SCAN_EVERY = 0.2  # seconds between two looks for new pilot directories
STATE_EVERY = 1.0  # seconds between two reads of a known pilot's state.json


@dataclass
class Waiting:
    """A packed attempt and what it needs of a pilot."""

    adir: str
    cpu: float
    memory: int
    need: float  # its timeLimit in seconds; 0 when it has none
    refused: set[str] = field(default_factory=set)  # pilots that had no walltime for it

    @classmethod
    def of(cls, adir: str, resources: Resources) -> Waiting:
        return cls(adir, float(resources.cpu or 1.0), int(resources.memory or 0),
                   float(resources.time_limit or 0.0))


@dataclass
class Pilot:
    name: str
    dir: Path
    state: pf.PilotState
    events: pf.Tail
    assigned: dict[str, Waiting] = field(default_factory=dict)
    started: dict[str, tuple[float, str]] = field(default_factory=dict)  # adir -> (ts, node)
    killed: set[str] = field(default_factory=set)
    gone: bool = False  # its allocation is over: nothing of it runs or starts any more
    state_at: float = 0.0

    @property
    def job(self) -> str:
        return self.state.job_id

    def taking(self) -> bool:
        return not self.gone and self.state.status == pf.RUNNING and \
            not (self.dir / pf.STOP).exists()

    def room(self, w: Waiting, now: float, prefetch: float, margin: float) -> bool:
        if w.cpu > self.state.cpus + 1e-9 or w.memory > self.state.memory:
            return False
        if w.need and now + w.need > self.state.deadline - margin:
            return False
        cpu = sum(a.cpu for a in self.assigned.values())
        mem = sum(a.memory for a in self.assigned.values())
        limit = 1.0 + prefetch
        return (cpu + w.cpu <= self.state.cpus * limit + 1e-9
                and mem + w.memory <= self.state.memory * limit)


class Fleet:
    """The pilots, the backlog and the events of one workflow's packed site."""

    def __init__(self, run_dir: Path, *, prefetch: float, margin: float) -> None:
        self.dir = pf.pilots_dir(run_dir)
        self.prefetch = prefetch
        self.margin = margin
        self.own_job: str | None = None  # the allocation this dispatcher runs in
        self.pilots: dict[str, Pilot] = {}
        self.where: dict[str, str] = {}  # attempt dir -> pilot holding it
        self.backlog: dict[str, Waiting] = {}  # in submission order
        self.changes: dict[str, JobStatus] = {}
        self.reports: dict[str, AttemptOutcome] = {}
        self.waiting_since: float | None = None
        self._scanned = 0.0
        self._dirty = False
        self._loaded = False

    # -- what the files say ------------------------------------------------------------------
    def refresh(self) -> bool:
        """Look for new pilots and read every live pilot's new events; True if an attempt
        ended (a report or a final state is waiting for the dispatcher)."""
        if not self._loaded:
            self._loaded = True
            self._scan(force=True)
        else:
            self._scan()
        ended = False
        for p in self.pilots.values():
            if not p.gone:
                ended |= self._apply(p, p.events.lines())
        return ended or bool(self.reports)

    def _scan(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._scanned < SCAN_EVERY:
            return
        self._scanned = now
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            if name in self.pilots or not (self.dir / name / pf.STATE).exists():
                continue
            state = pf.read_state(self.dir / name)
            if state is None:
                continue
            p = self.pilots[name] = Pilot(name, self.dir / name, state,
                                          pf.Tail(self.dir / name / pf.EVENTS), state_at=now)
            self._adopt_queue(p)
            self._dirty = True
        for p in list(self.pilots.values()):
            if not p.gone and now - p.state_at >= STATE_EVERY:
                p.state = pf.read_state(p.dir) or p.state
                p.state_at = now
                if p.state.status == pf.GONE:
                    self.over(p, cleanly=True)
                elif p.job != self.own_job and _dead_here(p):
                    self.over(p, cleanly=False)

    def _adopt_queue(self, p: Pilot) -> None:
        """A pilot this process did not feed (its predecessor did): its queue lines are its
        assignments, less those taken back from it (`-<dir>`, after it refused them or
        ended without starting them)."""
        mine: dict[str, None] = {}
        for line in pf.Tail(p.dir / pf.QUEUE).lines():
            if line.startswith(pf.TAKEN_BACK):
                mine.pop(line[1:], None)
            else:
                mine[line] = None
        for adir in mine:
            self.backlog.pop(adir, None)
            info = protocol.read_task(Path(adir))
            p.assigned[adir] = Waiting.of(adir, Resources.from_json(info.get("resources")))
            self.where[adir] = p.name

    def _apply(self, p: Pilot, lines: list[str]) -> bool:
        ended = False
        for line in lines:
            kind, adir, rest = pf.parse_event(line)
            if kind == pf.STARTED:
                ts, _, node = rest.partition("\t")
                p.started[adir] = (float(ts or time.time()), node or p.state.node)
                self.changes[adir] = JobStatus(JobState.RUNNING, node=node or p.state.node,
                                               started_at=float(ts or time.time()))
            elif kind == pf.ENDED:
                outcome = pf.outcome_of(rest, adir)
                if outcome is not None:
                    self.reports[adir] = outcome
                    self._release(p, adir)
                    ended = True
            elif kind == pf.KILLED:
                p.killed.add(adir)
                self.changes[adir] = self._judge(adir, killed=True)
                self._release(p, adir)
                ended = True
            elif kind == pf.REFUSED:
                w = p.assigned.get(adir)
                self._release(p, adir)
                if w is not None and not (Path(adir) / protocol.PID).exists():
                    w.refused.add(p.name)
                    self._take_back(p, w)
            elif kind == pf.CANCELLED:
                self._release(p, adir)
        return ended

    def _release(self, p: Pilot, adir: str) -> None:
        p.assigned.pop(adir, None)
        if self.where.get(adir) == p.name:
            del self.where[adir]
        self._dirty = True

    # -- the backlog and the queues ----------------------------------------------------------
    def add(self, waits: list[Waiting]) -> None:
        for w in waits:
            if w.adir not in self.where:
                self._wait(w)

    def _take_back(self, p: Pilot, w: Waiting) -> None:
        """Back to the backlog from a pilot that will never start it; said in the pilot's
        queue first, so a dispatcher reading the queues later assigns it once."""
        pf.append(p.dir / pf.QUEUE, [f"{pf.TAKEN_BACK}{w.adir}"])
        self._wait(w)

    def _wait(self, w: Waiting) -> None:
        self.backlog[w.adir] = w
        self._dirty = True
        if self.waiting_since is None:
            self.waiting_since = time.time()

    def live(self) -> list[Pilot]:
        """Pilots that take work, this allocation's own first, then the oldest: work goes
        to few allocations, so extra ones run dry and end."""
        return sorted((p for p in self.pilots.values() if p.taking()),
                      key=lambda p: (p.job != self.own_job, p.state.started))

    def feed(self) -> None:
        """Append waiting attempts to the queues of pilots with room, in order."""
        if not (self._dirty and self.backlog):
            if not self.backlog:
                self.waiting_since = None
            return
        self._dirty = False
        now = time.time()
        pilots = self.live()
        lines: dict[str, list[str]] = {}
        for adir, w in list(self.backlog.items()):
            p = next((p for p in pilots if p.name not in w.refused
                      and p.room(w, now, self.prefetch, self.margin)), None)
            if p is None:
                continue
            del self.backlog[adir]
            p.assigned[adir] = w
            self.where[adir] = p.name
            lines.setdefault(p.name, []).append(adir)
        for name, ls in lines.items():
            pf.append(self.pilots[name].dir / pf.QUEUE, ls)
        if not self.backlog:
            self.waiting_since = None

    def needs_fresh(self) -> bool:
        """Some waiting attempt fits no live pilot's walltime (or none lives): only a new
        allocation can run it."""
        now = time.time()
        pilots = self.live()
        return any(not any(p.name not in w.refused and w.cpu <= p.state.cpus
                           and (not w.need or now + w.need <= p.state.deadline - self.margin)
                           for p in pilots) for w in self.backlog.values())

    def misfits(self) -> list[str]:
        """Waiting attempts bigger (cpus, memory) than any live pilot: the packing block left
        the allocation's memory to the scheduler, and it gave less. They leave the backlog
        (the caller sends them out as ordinary jobs)."""
        pilots = self.live()
        if not pilots:
            return []
        out = [adir for adir, w in self.backlog.items()
               if all(w.cpu > p.state.cpus + 1e-9 or w.memory > p.state.memory
                      for p in pilots)]
        for adir in out:
            del self.backlog[adir]
        return out

    def demand(self) -> float:
        return sum(w.cpu for w in self.backlog.values())

    def busy(self) -> bool:
        return bool(self.backlog or self.where or self.reports or self.changes)

    # -- attempts ----------------------------------------------------------------------------
    def status(self, adir: str) -> JobStatus | None:
        if adir in self.backlog:
            return JobStatus(JobState.PENDING)
        name = self.where.get(adir)
        if name is None:
            return None
        p = self.pilots[name]
        if adir in p.started:
            ts, node = p.started[adir]
            return JobStatus(JobState.RUNNING, node=node, started_at=ts)
        return JobStatus(JobState.PENDING)

    def over(self, p: Pilot, *, cleanly: bool) -> None:
        """The pilot's allocation is over: settle what it still held, by its files."""
        if p.gone:
            return
        p.gone = True
        self._apply(p, p.events.lines())  # its last words first
        for adir, w in list(p.assigned.items()):
            self._release(p, adir)
            has_pid = (Path(adir) / protocol.PID).exists()
            if not has_pid and cleanly:  # it can never start it: another pilot may
                self._take_back(p, w)
            elif not has_pid and claim_for_cancel(Path(adir)) is None:
                self.changes[adir] = JobStatus(JobState.CANCELLED, message=ALLOCATION_ENDED)
            else:
                self.changes[adir] = self._judge(adir, killed=adir in p.killed)
        log.info("pilot %s is over (%s)", p.name, "ended" if cleanly else "allocation gone")

    def _judge(self, adir: str, *, killed: bool) -> JobStatus:
        """A started attempt whose pilot cannot report it: its exit code settles it, unless
        the end of its allocation killed it (then it runs again)."""
        rc = protocol.read_exit(adir)[0]
        if rc is not None and (rc == 0 or (not killed and rc not in SIGNALLED)):
            return JobStatus(JobState.COMPLETED if rc == 0 else JobState.FAILED, exit_code=rc)
        return JobStatus(JobState.PREEMPTED, message=ALLOCATION_ENDED)

    def allocations_over(self, jobs: set[str]) -> None:
        """These allocations are no longer running (the scheduler's listing says so)."""
        for p in list(self.pilots.values()):
            if p.job in jobs and p.job != self.own_job:
                self.over(p, cleanly=p.state.status == pf.GONE)

    def cancel(self, adirs: list[str]) -> None:
        """Stop these attempts: those still waiting are dropped; the pilots holding the
        others are told (after the caller's claim, a queued one can never start)."""
        for adir in adirs:
            self.backlog.pop(adir, None)
            name = self.where.get(adir)
            if name is not None:
                pf.mark_cancel(self.pilots[name].dir, adir)

    def stop(self) -> None:
        """Ask every pilot to take nothing more and end once idle."""
        for p in self.pilots.values():
            if not p.gone:
                (p.dir / pf.STOP).touch()


def _dead_here(p: Pilot) -> bool:
    """An agent on this very host whose process is gone (no need to wait for the
    scheduler's listing: its launcher took its tasks along, see pilot_agent.py)."""
    if p.state.host != socket.gethostname() or p.state.pid <= 0:
        return False
    try:
        proc = psutil.Process(p.state.pid)
        alive = proc.status() != psutil.STATUS_ZOMBIE and str(p.dir.parent.parent) in \
            " ".join(proc.cmdline())
    except psutil.Error:
        alive = False
    return not alive
