"""SGE's dispatcher job: "start when the FIRST in-flight job ends", which SGE cannot say.

`-hold_jid a,b` waits for ALL of a and b, so a link's dispatcher is a small group of identical
jobs, one per watched job: the leader `akoflow.<wf>.dispatcher` holds on the first in-flight
job and each sibling `akoflow.<wf>.dispatcher+<leader id>` on one other. Whichever is released
first runs the cycle; `jobs` reports pending siblings under their leader's id while the leader
waits, so the chain's "cancel every other pending dispatcher" removes the whole group (`cancel`
deletes a leader's pending siblings with it). At most `dispatcher_watchers` jobs are watched;
beyond that one more sibling with no hold starts after `dispatcher_max_wait` seconds, so the
chain never waits on jobs it does not watch for longer than that. A hold on a job that has
already ended is ignored by SGE: that member starts at once, which is right (something ended).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from akoflow.port import JobState, SubmitError

from .batch_script import QueueEntry

log = logging.getLogger(__name__)
SIBLING = "+"  # `<dispatcher name>+<leader id>`: a member of a dispatcher group
Qsub = Callable[..., list[str]]  # sge.submit_argv


class DispatcherGroup:
    """Queues, lists and cancels dispatcher groups through the executor's own commands."""

    def __init__(self, config: Mapping[str, Any], command: Callable[[list[str]], str],
                 queue: Callable[[], list[QueueEntry]], qsub: Qsub,
                 submitted: Callable[[str], list[str]]) -> None:
        self.watchers = max(1, int(config.get("dispatcher_watchers", 8)))
        self.max_wait = float(config.get("dispatcher_max_wait", 300))
        self.command, self.queue, self.qsub, self.submitted = command, queue, qsub, submitted

    def submit(self, name: str, script: Path, after_any: Sequence[str], delay: float) -> str:
        """Queue a group for `script`; returns the leader's id."""
        start = time.time() + delay if delay > 0 else None
        watched = list(dict.fromkeys(after_any))[:self.watchers]
        siblings = [self.qsub(str(script), hold=[j], start_at=start) for j in watched[1:]]
        if len(set(after_any)) > len(watched):
            siblings.append(self.qsub(str(script), start_at=time.time() + self.max_wait))
        leader = self.submitted(self.command(
            self.qsub(str(script), hold=watched[:1], start_at=start)))[0]
        for argv in siblings:  # `-N` on the command line overrides the script's
            try:
                self.command([*argv[:2], "-N", f"{name}{SIBLING}{leader}", *argv[2:]])
            except SubmitError as exc:  # the leader alone still ends up running
                log.warning("could not queue a dispatcher sibling: %s", exc)
        return leader

    def jobs(self, name: str) -> list[tuple[str, JobState]]:
        """Every member named for `name`; a pending sibling under its waiting leader's id."""
        entries = [e for e in self.queue()
                   if e.name == name or e.name.startswith(name + SIBLING)]
        waiting = {e.job_id for e in entries
                   if e.name == name and e.status.state is JobState.PENDING}
        out = []
        for e in entries:
            leader = e.name[len(name) + 1:] if e.name != name else e.job_id
            out.append((leader if leader in waiting else e.job_id, e.status.state))
        return out

    def with_siblings(self, job_ids: Sequence[str]) -> list[str]:
        """`job_ids` and the pending members of the groups they lead."""
        ids = list(job_ids)
        try:
            leaders = set(ids)
            ids += [e.job_id for e in self.queue() if e.status.state is JobState.PENDING
                    and SIBLING in e.name and e.name.rpartition(SIBLING)[2] in leaders]
        except SubmitError as exc:
            log.info("qstat before qdel failed: %s", exc)
        return ids
