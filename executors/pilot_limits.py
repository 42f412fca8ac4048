"""Admin limits on what a user may queue: read from the cluster where it says, else the profile.

MaxSubmitJobs (jobs queued or running at once, array elements counted one by one) and MaxJobs
(running at once): Slurm keeps them on associations and QOSes in its accounting database
(`sacctmgr`, only where slurmdbd runs), SGE in its configuration (`qconf -sconf`: max_u_jobs,
max_aj_tasks; `qconf -ssconf`: maxujobs). The profile's `packing.max_submit_jobs` and
`packing.max_jobs` apply too (the smaller wins), for clusters that do not tell. MaxArraySize
is the batch adapters' own (`max_array_size()`). PBS, LSF and Flux keep theirs in server or
queue settings akoflow does not read: there, the profile's numbers and the "over a limit"
refusals below are what akoflow goes by.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from akoflow.port import SubmitError

from .base import BatchExecutor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_submit: float = math.inf  # jobs queued or running at once
    max_jobs: float = math.inf  # jobs running at once

    def tighter(self, other: Limits) -> Limits:
        return Limits(min(self.max_submit, other.max_submit), min(self.max_jobs, other.max_jobs))


def profile_limits(packing: Mapping[str, Any]) -> Limits:
    def num(key: str) -> float:
        value = packing.get(key)
        return math.inf if value in (None, 0, "") else float(value)

    return Limits(num("max_submit_jobs"), num("max_jobs"))


def _positive(text: str) -> float:
    """A limit as sacctmgr/qconf print it: empty, 0 or -1 mean none."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return math.inf
    return value if value > 0 else math.inf


def parse_sacctmgr(stdout: str) -> Limits:
    """`sacctmgr -n -P ... format=MaxSubmit,MaxJobs` (association) or `...format=
    MaxSubmitPU,MaxJobsPU` (QOS): the tightest of the rows printed."""
    out = Limits()
    for line in stdout.splitlines():
        submit, sep, jobs = line.partition("|")
        if sep:
            out = out.tighter(Limits(_positive(submit), _positive(jobs.split("|")[0])))
    return out


def slurm_argvs(user: str, qos: str | None) -> list[list[str]]:
    argvs = [["sacctmgr", "-n", "-P", "show", "assoc", "where", f"user={user}",
              "format=MaxSubmit,MaxJobs"]]
    if qos:
        argvs.append(["sacctmgr", "-n", "-P", "show", "qos", "where", f"name={qos}",
                      "format=MaxSubmitPU,MaxJobsPU"])
    return argvs


def parse_qconf(stdout: str, *keys: str) -> float:
    """The tightest of `keys` in `qconf -sconf` / `-ssconf` output (0: no limit)."""
    out = math.inf
    for line in stdout.splitlines():
        name, _, value = line.strip().partition(" ")
        if name in keys:
            out = min(out, _positive(value))
    return out


def cluster_limits(batch: BatchExecutor) -> Limits:
    """What the cluster says of this user's limits (none where it cannot say)."""
    try:
        if batch.kind == "slurm":
            user = str(batch.config.get("user") or "") or _me()
            qos = batch.defaults.get("qos")
            out = Limits()
            for argv in slurm_argvs(user, qos):
                out = out.tighter(parse_sacctmgr(batch.command(argv, retries=0)))
            return out
        if batch.kind == "sge":
            conf = batch.command(["qconf", "-sconf"], retries=0)
            sched = batch.command(["qconf", "-ssconf"], retries=0)
            return Limits(parse_qconf(conf, "max_u_jobs", "max_jobs"),
                          parse_qconf(sched, "maxujobs"))
    except SubmitError as exc:  # no accounting database, no permission: the profile's
        log.info("%s limits unknown (%s); the profile's apply", batch.kind, exc)
    return Limits()


def _me() -> str:
    import getpass

    return getpass.getuser()
