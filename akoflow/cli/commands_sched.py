"""Scheduling commands: simulate a workflow's placement, and show a site's node inventory."""

from __future__ import annotations

from typing import Any

import click

from akoflow.cli import render
from akoflow.port.units import format_bytes


@click.command()
@click.argument("workflow", type=click.Path(dir_okay=False))
@click.option("--nodes", "nodes_file", required=True, type=click.Path(dir_okay=False),
              help="YAML with a `nodes:` list (name, cpus, memory, speed, cost_per_hour...).")
@click.option("--policy", default=None,
              help="akoscore (default), first-fit, round-robin, cost, heft, or module:function.")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=None,
              help="AkôScore weight for every activity (default: the spec's, else 0.5).")
@click.option("--json", "as_json", is_flag=True)
def simulate(workflow: str, nodes_file: str, policy: str | None, alpha: float | None,
             as_json: bool) -> None:
    """Simulate WORKFLOW (AkôFlow YAML or WfCommons .json trace) on a node set."""
    from akoflow import service
    from akoflow.scheduling.inventory import InventoryError
    from akoflow.scheduling.policies import PolicyError
    from akoflow.scheduling.simulator import SimulationError
    from akoflow.scheduling.workload import WorkloadError

    try:
        wl, nodes, result = service.simulate(workflow, nodes_file, policy, alpha)
    except (InventoryError, WorkloadError, PolicyError, SimulationError) as exc:
        raise click.ClickException(str(exc)) from None
    data: dict[str, Any] = {"workflow": wl.name, "activities": len(wl.tasks),
                            "alpha": alpha, **result.summary()}
    if as_json:
        render.emit_json(data)
        return
    click.echo(f"{wl.name}: {len(wl.tasks)} activities on {len(nodes)} nodes, policy "
               f"{result.policy}{'' if alpha is None else f' alpha={alpha:g}'}")
    click.echo(f"  makespan      {result.makespan:.1f} s")
    click.echo(f"  memory waste  {result.memory_waste_gbh:.4f} GB*h")
    if result.plan is not None:
        front = ", ".join(f"{lb} {m:.1f} s/{w:.4f}" for lb, m, w in result.plan.front)
        click.echo(f"  plan          {result.plan.label} (alpha's point of the front: {front})")
    tasks = result.tasks_per_node()
    render.table(["node", "utilisation", "tasks"], [
        [n, f"{u * 100:.1f}%", tasks[n]] for n, u in result.utilisation.items()])


@click.command()
@click.option("--site", default="local", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def nodes(site: str, as_json: bool) -> None:
    """The node inventory of SITE: what its executor reports, with the profile's `nodes:`."""
    from akoflow import service
    from akoflow.port import ExecutorError
    from akoflow.scheduling.inventory import InventoryError

    try:
        found = service.site_inventory(site)
    except (InventoryError, ExecutorError) as exc:
        raise click.ClickException(f"site {site}: {exc}") from None
    if as_json:
        render.emit_json([render.to_jsonable(n) for n in found])
        return
    render.table(["node", "state", "cpus free/total", "memory free/total", "speed", "cost/h",
                  "features", "partitions"], [
        [n.name, n.state, f"{n.cpus_free:g}/{n.cpus:g}",
         f"{format_bytes(n.memory_free)}/{format_bytes(n.memory)}", f"{n.speed:g}",
         "-" if n.cost_per_hour is None else f"{n.cost_per_hour:g}",
         ",".join(n.features) or "-", ",".join(n.partitions) or "-"] for n in found])


@click.command()
@click.argument("wf_id")
@click.argument("activity")
@click.option("--attempt", type=int, default=None, help="Attempt number (default: the last).")
@click.option("--site", help="Ask this SSH site (as SITE:ID does).")
@click.option("--json", "as_json", is_flag=True)
def explain(wf_id: str, activity: str, attempt: int | None, site: str | None,
            as_json: bool) -> None:
    """Why ACTIVITY of workflow WF_ID went to its node: the plan, and every candidate's terms."""
    from akoflow.cli import route

    data = route.ask("explain", wf_id, site, activity=activity, attempt=attempt)
    if as_json:
        render.emit_json(data)
        return
    if data["attempt"] is None:
        click.echo(f"{activity}: {data['status']}, not placed yet"
                   + (f" ({data['waiting']})" if data["waiting"] else ""))
        return
    head = f"{activity} attempt {data['attempt']}: node {data['node'] or '-'}"
    if data["ran_on"] and data["ran_on"] != data["node"]:
        head += f" (ran on {data['ran_on']})"
    if not data["scores"]:
        click.echo(f"{head}; no policy chose it (the scheduler placed it, or there was a "
                   "single node)")
        return
    rank = "" if data["rank"] is None else f", upward rank {data['rank']:g} s"
    click.echo(f"{head} won under policy {data['policy'] or '?'} (alpha {data['alpha']:g}"
               f"{rank}); higher scores win")
    plan = data["plan"]
    if plan:
        click.echo(f"  plan {plan['label']}: alpha's point of this workflow's front "
                   f"(planned node {plan['node']}, which gets +1 while its turn has come)")
        for p in plan.get("front", []):
            mark = "  <- alpha's point" if p["label"] == plan["label"] else ""
            click.echo(f"    {p['label']:18} makespan {p['makespan']:10.1f} s  waste "
                       f"{p['memory_waste_gbh']:10.4f} GB*h{mark}")
    if data["policy"] == "akoscore":
        click.echo("  score = alpha x memory part + (1 - alpha) x speed part (1 = the best "
                   "candidate)")
    render.table(["node", "speed part", "memory part", "score", ""], [
        [c["node"], _part(c.get("speed")), _part(c.get("memory")),
         "unsuitable" if c["score"] is None else f"{c['score']:.4f}",
         "<- chosen" if c["chosen"] else ""] for c in data["candidates"]])


def _part(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


COMMANDS = [simulate, nodes, explain]
