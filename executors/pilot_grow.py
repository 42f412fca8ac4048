"""When a packed workflow asks for one more allocation, and which requests it lets go.

One more is asked for when work has waited `grow_after` with every pilot full (no more than
the waiting cpus need), when some waiting work fits the walltime of no live pilot, or when
there is no allocation at all; one request at a time, up to `max_allocations`, and only
within the site's job limits less the dispatcher chain's share (a lead and its guard).
Requests whose allocation has not started are cancelled once nothing has waited for
`idle_timeout`; allocations that did start end by themselves when idle (pilot_agent.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from akoflow.port import JobRef

from .base import BatchExecutor
from .pilot_config import Packing
from .pilot_fleet import Fleet
from .pilot_jobs import ACTIVE, HeldJobs, SchedulerView

EVERY = 0.5  # seconds between two looks at whether to grow or shrink


@dataclass
class Packed:
    """One workflow's side of a packed site: its pilots, its listing, its ordinary jobs."""

    run_dir: Path
    fleet: Fleet
    view: SchedulerView
    held: HeldJobs
    name: str  # the job name of its pilot allocations
    asked_at: float = 0.0  # the last allocation request
    looked_at: float = 0.0
    polled_at: float = 0.0  # the listing whose states ordinary jobs were last given
    idle_since: float | None = None

    @property
    def dispatcher_name(self) -> str:
        """The chain's job name (dispatch/chain.py): the run directory's name ends with the
        manifest's instance id, its workflow id before that."""
        _, wf, instance = self.run_dir.name.rsplit("-", 2)
        return f"akoflow.{wf}.dispatcher.{instance.split('.')[0]}"


def asked(w: Packed) -> list[str]:
    """Allocations requested, queued or running, whose agents have not spoken yet."""
    seen = {p.job for p in w.fleet.pilots.values()}
    return [j for j, st in w.view.named(w.name) if st in ACTIVE and j not in seen]


def spare(w: Packed) -> float:
    """Jobs that may still be queued for pilots and ordinary jobs: the limit's headroom less
    what the dispatcher chain must always find when a lead runs (itself and its guard)."""
    room = w.view.headroom()
    if room == math.inf or not w.fleet.own_job:
        return room
    chain = [j for j, st in w.view.named(w.dispatcher_name) if st in ACTIVE]
    return room - max(0, 2 - len(chain))


def cancel_asked(w: Packed, batch: BatchExecutor) -> None:
    pending = asked(w)
    if pending:
        batch.cancel([JobRef(j, "", "", 0.0) for j in pending])
        w.view.cancelled(pending)


def step(w: Packed, pack: Packing, batch: BatchExecutor, ask: Callable[[Packed], None],
         *, force: bool = False) -> None:
    """Grow or shrink, at most every EVERY seconds (unless `force`)."""
    now = time.time()
    if not force and now - w.looked_at < EVERY:
        return
    w.looked_at = now
    fleet = w.fleet
    if not fleet.backlog:
        w.idle_since = w.idle_since or now
        if now - w.idle_since >= pack.idle_timeout:
            cancel_asked(w, batch)
        return
    w.idle_since = None
    live = {p.job for p in fleet.pilots.values() if not p.gone}
    own = fleet.own_job
    coming = asked(w) + ([own] if own and own not in live else [])
    if len(live | set(coming)) >= pack.max_allocations or now - w.asked_at < pack.grow_after:
        return
    waited = fleet.waiting_since is not None and now - fleet.waiting_since >= pack.grow_after
    need = (not live and not coming) or (not coming and bool(live) and fleet.needs_fresh()) \
        or (waited and len(coming) < math.ceil(fleet.demand() / (pack.cpus * pack.nodes)))
    if need and spare(w) >= 1 and w.view.may_run_more():
        ask(w)
