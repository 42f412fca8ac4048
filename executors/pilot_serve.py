"""`akoflow pilot`: a process inside an allocation becomes the agent of one of its nodes.

Kept apart from `pilot.py` (the dispatcher's side of packing): this is what runs on the
allocation's nodes, with the local executor's machinery."""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from . import pilot_files as pf
from .pilot_agent import allocation_memory, die_with_parent, node_name, run_agent
from .pilot_here import job_here, started_here

if TYPE_CHECKING:
    from .pilot import PilotExecutor


def serve(ex: PilotExecutor, run_dir: Path, *, index: int, started: float | None,
          parent: int | None, spawn: bool, lead: bool) -> int:
    """Be the agent of node `index` of this allocation; with `spawn`, start the agents of
    its other nodes first (a pilot's job script). The agents of a lead's allocation never
    end idle: the lead ends them."""
    from .local import LocalExecutor

    if parent:
        die_with_parent(parent)
    started = started or started_here()
    if spawn:
        ex.agents.start(kind=ex.batch.kind, python=ex.python, run_dir=run_dir, site=ex.site,
                        started=started, first=1)
    cpus = ex.pack.cpus
    memory = ex.pack.memory or allocation_memory(cpus) or psutil.virtual_memory().total
    job = job_here()
    state = pf.PilotState(
        pilot=pf.pilot_name(job, index), job_id=job, node=node_name(), cpus=cpus,
        memory=int(memory), started=started, deadline=started + ex.pack.time,
        beat=time.time(), pid=os.getpid(), host=socket.gethostname())
    try:
        return run_agent(pf.pilots_dir(run_dir) / state.pilot, LocalExecutor, ex.site,
                         ex.config, state,
                         idle_timeout=math.inf if lead else ex.pack.idle_timeout,
                         margin=ex.pack.margin)
    finally:
        ex.agents.wait()
