"""A registered workflow's AkôScore plan: made once from the manifest, kept in its run dir.

The first time the dispatcher places activities of a workflow with AkôScore on a site of
several nodes, it turns the registered DAG into a workload (run times from the history of
earlier runs, else `estimate`, else `timeLimit`, else 1 s, as placement expects them),
plans it on the site's nodes as if idle (`front.plan_for`) with the alpha most activities
share, and writes the chosen point to `<run_dir>/placement-plan.json` (atomically). Every
later cycle, in any dispatcher process, reads it back: the plan is made once. Activities
whose own alpha differs from the plan's are left out of it and placed online at their alpha.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from akoflow.manifest import ActivityRecord, Manifest, WorkflowRecord
from akoflow.port import Node, Status
from akoflow.scheduling.front import PLAN_LIMIT, plan_for
from akoflow.scheduling.placement import History, task_view
from akoflow.scheduling.plan import Plan, PlanFollower
from akoflow.scheduling.policies import expected_time
from akoflow.scheduling.workload import SimTask, Workload

PLAN_FILE = "placement-plan.{site}.json"
GRACE = 60.0  # seconds a planned activity may be late before it is placed online


def workload_of(acts: Sequence[ActivityRecord], edges: Sequence[tuple[int, int]],
                history: History) -> Workload:
    """The registered DAG as the simulator's workload, with expected run times."""
    names = {a.id: a.name for a in acts}
    parents: dict[int, list[str]] = {a.id: [] for a in acts}
    for child, parent in edges:
        if child in parents and parent in names:
            parents[child].append(names[parent])
    tasks = []
    for a in acts:
        view = task_view(a.name, a.request(), alpha=a.alpha, identity=a.identity,
                         estimate=a.estimate, seq=a.seq)
        secs = expected_time(view, history)
        tasks.append(SimTask(a.name, tuple(parents[a.id]), secs, view.memory, cpu=view.cpu,
                             memory=view.memory, node_selector=view.node_selector,
                             alpha=a.alpha))
    return Workload(str(acts[0].workflow_id) if acts else "empty", tasks)


def load_or_make(m: Manifest, wf: WorkflowRecord, site: str, nodes: Sequence[Node],
                 history: History) -> Plan | None:
    """The workflow's plan on `site` (None: too big to plan, spread over several sites, or
    nothing to plan on)."""
    path = Path(wf.run_dir) / PLAN_FILE.format(site=re.sub(r"[^A-Za-z0-9._-]", "_", site))
    try:
        text = path.read_text(encoding="utf-8")
        if "unplanned" in json.loads(text):
            return None
        return Plan.from_json(text)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError):
        pass  # a damaged plan file: plan again
    plan = _make(m, wf, site, nodes, history)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if plan is not None:
            plan.save(path)
            return plan
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"unplanned": f"more than {PLAN_LIMIT} activities, several "
                                                "sites, or an activity no node fits"}),
                       encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # an unwritable run dir: this process keeps the plan; another plans again
    return plan


def _make(m: Manifest, wf: WorkflowRecord, site: str, nodes: Sequence[Node],
          history: History) -> Plan | None:
    acts = m.activities(wf.id)
    if not acts or len(acts) > PLAN_LIMIT or len(nodes) < 2:
        return None
    if any(a.runtime != site for a in acts):
        return None  # a workflow over several sites is placed online on each
    alpha = Counter(a.alpha for a in acts).most_common(1)[0][0]
    idle = [replace(n, cpus_free=n.cpus, memory_free=n.memory) for n in nodes]
    wl = workload_of(acts, m.edges(wf.id), history)
    fits = [t for t in wl.tasks if any(t.cpu <= n.cpus + 1e-9 and t.memory <= n.memory
                                       for n in idle)]
    if len(fits) < len(wl.tasks):
        return None  # some activity fits no node: the executor refuses it, nothing to plan
    from akoflow.scheduling.simulator import SimulationError

    try:
        plan = plan_for(wl, idle, history_of(wl), alpha)
    except SimulationError:
        return None  # a nodeSelector no node satisfies: placed online, which explains it
    if plan is None:
        return None
    own = {a.name for a in acts if a.alpha == alpha}
    return replace(plan, node_of={k: v for k, v in plan.node_of.items() if k in own},
                   rank_of={k: v for k, v in plan.rank_of.items() if k in own})


def history_of(wl: Workload) -> History:
    """The workload's expected times as a history (the simulator feeds AkôScore with it)."""
    from akoflow.scheduling.history import RunHistory

    return RunHistory.from_runtimes((t.name, t.runtime) for t in wl.tasks)


def follower(m: Manifest, wf: WorkflowRecord, plan: Plan) -> PlanFollower | None:
    """This cycle's view of an offline plan: what has not started, and the plan's clock."""
    if not plan.offline:
        return None
    waiting = [a.name for a in m.activities(wf.id, (Status.PENDING.value, Status.READY.value))]
    began = wf.started_at or wf.created_at
    return plan.follower(waiting, clock=max(0.0, time.time() - began), grace=GRACE)
