"""AkôScore's plan: a small family of settings simulated, their Pareto front, alpha's point.

Greedy per-task scoring does not give a front that is monotone per workflow (a locally leaner
choice can delay a long chain and hold every node longer), so alpha does not weigh the two
terms task by task. Instead, before the run, each setting of a small family is simulated on
the workflow (the simulator runs the dispatcher's own placement code):
- online AkôScore at alpha 0, 0.25, 0.5, 0.75, 1 (rounds by upward rank), and first fit;
- offline plans: HEFT, and its epsilon-constraint variant that trades up to `slack` x a
  task's run time of finish time for the least added memory waste (`heft.py`), followed
  by node and per-node order (`plan.py`).
Points that another beats on both makespan and waste are dropped; of the rest (the front,
sorted by makespan) alpha picks the one that maximises AkôFlow's own formula applied to the
whole schedule:  (1 - alpha) * speed + alpha * memory fit, where speed = fastest makespan /
this makespan and memory fit = (most waste - this waste) / (most - least), over the front.
A weighted sum over a Pareto front is monotone in alpha (raising alpha never picks a point
with more waste, hence never one with a shorter makespan), and the point is run exactly as
it was simulated, so the trade-off holds by construction, not by tuning. The fastest point is
never slower than HEFT's schedule (the followed HEFT plan is in the family), and neither
first fit nor HEFT's plan can beat the chosen point on both goals (both are in the family).

Planning costs a dozen simulations, so workflows of more than PLAN_LIMIT activities are not
planned: they are placed online by AkôScore at their alpha, rounds by upward rank (greedy;
no front guarantee there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from akoflow.port import Node
from akoflow.scheduling.heft import heft
from akoflow.scheduling.placement import History
from akoflow.scheduling.plan import Plan
from akoflow.scheduling.simulator import SimResult, run_plan, run_policy
from akoflow.scheduling.workload import Workload

PLAN_LIMIT = 2000  # activities: a family of 12 simulations stays within seconds up to here
ONLINE_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
HEFT_SLACKS = (0.0, 0.1, 0.3, 1.0, 3.0, math.inf)


@dataclass(frozen=True)
class Front:
    """Every simulated setting, and the non-dominated ones sorted by makespan."""

    points: tuple[Plan, ...]  # the front, fastest first (waste falls along it)
    tried: tuple[Plan, ...]  # every setting simulated

    def choose(self, alpha: float) -> Plan:
        """The front point maximising (1 - alpha) * speed + alpha * memory fit (ties: the
        faster), with the whole front attached for `explain`."""
        fastest, slowest = self.points[0].makespan, self.points[-1].makespan
        least, most = self.points[-1].waste_gbh, self.points[0].waste_gbh
        best, best_score = self.points[0], -math.inf
        for p in self.points:
            speed = (slowest - p.makespan) / (slowest - fastest) if slowest > fastest else 1.0
            fit = (most - p.waste_gbh) / (most - least) if most > least else 1.0
            score = (1.0 - alpha) * speed + alpha * fit
            if score > best_score + 1e-12:
                best, best_score = p, score
        front = tuple((p.label, p.makespan, p.waste_gbh) for p in self.points)
        return replace(best, front=front)


def pareto(points: Sequence[Plan]) -> tuple[Plan, ...]:
    """The points no other beats on both makespan and waste, fastest first; of equal points
    the one listed first is kept."""
    ordered = sorted(points, key=lambda p: (p.makespan, p.waste_gbh))
    out: list[Plan] = []
    for p in ordered:
        if not out or p.waste_gbh < out[-1].waste_gbh - 1e-12:
            out.append(p)
    return tuple(out)


def _measured(label: str, policy: str | None, alpha: float, r: SimResult,
              planned: SimResult | None = None) -> Plan:
    source = planned or r
    node_of = {run.task: run.node for run in source.runs} if planned else {}
    start_of = {run.task: run.start for run in source.runs} if planned else {}
    return Plan(label, policy, alpha, r.makespan, r.memory_waste_gbh, node_of, start_of)


def build_front(wl: Workload, nodes: Sequence[Node], history: History,
                online: Sequence[float] = ONLINE_ALPHAS,
                slacks: Sequence[float] = HEFT_SLACKS) -> Front:
    """Simulate the family on `wl` (run times at speed 1 as `history` expects them)."""
    tried: list[Plan] = []
    for a in online:
        r = run_policy(wl, nodes, "akoscore", a, history)
        tried.append(_measured(f"akoscore a={a:g}", "akoscore", a, r))
    r = run_policy(wl, nodes, "first-fit", None, history)
    tried.append(_measured("first-fit", "first-fit", 0.0, r))
    for slack in slacks:
        planned = heft(wl, nodes, slack)
        draft = _measured(planned.policy, None, 0.0, planned, planned)
        followed = run_plan(wl, nodes, draft, history)
        tried.append(replace(draft, makespan=followed.makespan,
                             waste_gbh=followed.memory_waste_gbh))
    return Front(pareto(tried), tuple(tried))


def plan_for(wl: Workload, nodes: Sequence[Node], history: History,
             alpha: float) -> Plan | None:
    """alpha's point of the workflow's front, or None when it is too big to plan."""
    if len(wl.tasks) > PLAN_LIMIT or not nodes:
        return None
    from akoflow.scheduling.simulator import wl_ranks

    plan = build_front(wl, nodes, history).choose(alpha)
    ranks = dict(zip((t.name for t in wl.tasks), wl_ranks(wl, nodes)))
    return replace(plan, rank_of=ranks, alpha=alpha if plan.offline else plan.alpha)
