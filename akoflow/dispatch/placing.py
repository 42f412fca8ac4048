"""Which ready activities a cycle submits to a site, and where (step 5's placement half).

Bounded executors (this machine) take only what has room now; the rest stay READY. A batch
scheduler takes everything and places it itself, unless the workflow names a policy
(`spec.schedule`) or the site sets `placement:`: then each activity goes to the node the
policy picks among those with free room now (`--nodelist`), and one that fits no node now
stays READY for a later cycle.

AkôScore places by the workflow's plan (`scheduling/planning.py`), made on the first
placement and kept in the run directory: an offline plan's node and order per node while the
run keeps to it, or the online setting alpha's point of the front chose.
"""

from __future__ import annotations

from dataclasses import replace

from akoflow.manifest import ActivityRecord, Manifest, WorkflowRecord
from akoflow.port import Executor, Node, Resources, in_process
from akoflow.scheduling.history import LazyHistory
from akoflow.scheduling.inventory import site_nodes
from akoflow.scheduling.placement import Decision, first_fit, place, request_of, task_view
from akoflow.scheduling.plan import Plan

Placed = tuple[list[ActivityRecord], list["Decision | None"]]


class Placer:
    """Placement for one workflow's dispatcher; run-time history is read on first use."""

    def __init__(self, manifest: Manifest, wf_id: int, submit_limit: int) -> None:
        self.m = manifest
        self.wf_id = wf_id
        self.submit_limit = submit_limit
        self.history = LazyHistory(manifest)
        self._plans: dict[str, Plan | None] = {}  # by site: made or read once per process

    def placeable(self, ex: Executor, site: str, wf: WorkflowRecord) -> Placed:
        """Ready activities of `site` to submit now, each with its placement (or None)."""
        policy = wf.schedule or ex.config.get("placement")
        runner = in_process(ex)
        if runner is None or not runner.bounded:
            acts = self.m.ready_activities(self.wf_id, self.submit_limit, site)
            nodes = self._inventory(ex) if policy and acts else []
            if not nodes:
                return acts, [None] * len(acts)
            return self._decide(acts, nodes, str(policy), [(n.cpus, n.memory) for n in nodes],
                                wf, site)
        inventory = ex.nodes() if not ex.config.get("nodes") else self._inventory(ex)
        nodes = [replace(n, cpus_free=n.cpus_free + runner.prefetch * n.cpus,
                         memory_free=n.memory_free + int(runner.prefetch * n.memory))
                 for n in inventory]
        free = sum(max(0.0, n.cpus_free) for n in nodes)
        if free < 1e-3:
            return [], []
        # Two per free cpu (and a few more): enough to fill the room with typical tasks
        # and to skip past one that does not fit; reading far more costs every cycle.
        page = min(self.submit_limit, int(free * 2) + 4)
        acts = self.m.ready_activities(self.wf_id, page, site)
        sizes = [(n.cpus, n.memory) for n in nodes]
        if len(nodes) > 1 or policy:
            return self._decide(acts, nodes, str(policy or "akoscore"), sizes, wf, site)
        # One node and no policy asked for: nothing to choose, so plain first fit (cheap).
        out = []
        requests = [a.request() for a in acts]
        for act, res, node in zip(acts, requests, first_fit(requests, nodes)):
            if node is not None or never_fits(res, sizes):
                out.append(act)
        return out, [None] * len(out)

    def _inventory(self, ex: Executor) -> list[Node]:
        """The executor's nodes (one call) with the profile's static entries (speed, cost),
        kept in the manifest so run times can be scaled by node speed later."""
        nodes = site_nodes(ex.config, ex.nodes())
        if nodes:
            self.m.record_nodes(ex.site, nodes)
        return nodes

    def _plan(self, wf: WorkflowRecord, site: str, nodes: list[Node]) -> Plan | None:
        from akoflow.scheduling.planning import load_or_make

        if site not in self._plans:
            self._plans[site] = load_or_make(self.m, wf, site, nodes, self.history)
        return self._plans[site]

    def _decide(self, acts: list[ActivityRecord], nodes: list[Node], policy: str,
                sizes: list[tuple[float, int]], wf: WorkflowRecord, site: str) -> Placed:
        views = [task_view(a.name, a.request(), alpha=a.alpha, identity=a.identity,
                           estimate=a.estimate, seq=a.seq) for a in acts]
        plan = self._plan(wf, site, nodes) if policy == "akoscore" and acts else None
        follow = None
        if plan is not None:
            from akoflow.scheduling.planning import follower

            follow = follower(self.m, wf, plan)
            policy = plan.policy or policy  # an online point: its policy and alpha
            ranked = plan.policy != "first-fit"  # first fit goes longest first, as planned
            views = [replace(v, rank=plan.rank_of.get(v.name, 0.0) if ranked else 0.0,
                             alpha=v.alpha if v.name not in plan.rank_of or plan.offline
                             else plan.alpha) for v in views]
        out: list[ActivityRecord] = []
        chosen: list[Decision | None] = []
        waiting: list[tuple[int, str]] = []
        for act, d in zip(acts, place(views, nodes, policy, self.history, follow)):
            # Never fits anywhere: hand it over so the executor refuses it with its reason.
            if d.node is not None or never_fits(act.request(), sizes):
                out.append(act)
                chosen.append(d if d.node is not None else None)
            else:
                waiting.append((act.id, f"waiting for a node with room ({d.reason})"))
        if waiting:
            self.m.note_waiting(waiting)
        return out, chosen


def never_fits(res: Resources, sizes: list[tuple[float, int]]) -> bool:
    """True when no node is big enough even when empty."""
    cpu, mem = request_of(res)
    return not any(cpu <= c + 1e-9 and mem <= m for c, m in sizes)
