"""bench_slurm.py --part packing: the Montage trace packed into allocations, side by side with
the same workflow unpacked (one job per activity, chained dispatch) and run locally.

- noop: Montage with `--noop` packed (makespan, sbatch calls, squeue calls per minute,
  every activity FINISHED in one attempt) and unpacked through the dispatcher chain;
- sleeps: the trace's run times scaled to short sleeps (with its file reads and writes),
  run locally on the packing's cpus and packed with one allocation of as many cpus: the
  ratio packed / (local + the first allocation's wait), and whether both runs left the same
  file lineage;
- steps: what one `srun` step costs inside an allocation, against one task of a pilot's
  agent (the choice of one agent per node over one step per task).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from _slurm_bench import BenchError, ak, ak_env, iso_ts, make_wrappers, read_calls, squeue_rows

PACKED = ("name: packed\nextends: slurm\npacking: {{cpus: {cpus}, memory: {mem}M, time: 30m, "
          "max_allocations: 1, idle_timeout: 30s}}\n")


def _sites(scratch: Path, cpus: int) -> Path:
    sites = scratch / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    (sites / "packed.yaml").write_text(PACKED.format(cpus=cpus, mem=900 * cpus))
    (sites / "localn.yaml").write_text(f"name: localn\nextends: local\ncpus: {cpus}\n")
    return sites


def _wait(env: dict[str, str], timeout: float) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        st: dict[str, Any] = json.loads(ak(["status", "1", "--json"], env).stdout)
        if st["status"] in ("FINISHED", "FAILED", "CANCELLED"):
            return st
        if time.time() > deadline:
            raise BenchError(f"not over after {timeout:.0f} s: {st['counts']}")
        time.sleep(2)


def _once(env: dict[str, str]) -> bool:
    desc = json.loads(ak(["describe", "1", "--json"], env).stdout)
    return all(a["status"] == "FINISHED" and a["attempts"] == 1 for a in desc["activities"])


def submitted(wf: Path, site: str, scratch: Path, sites: Path, timeout: float
              ) -> dict[str, Any]:
    """`akoflow submit` with counting wrappers; makespan, calls and the first allocation's
    wait (from the pilots' own state files)."""
    bin_dir, log = make_wrappers(scratch)
    env = ak_env(scratch / "home", bin_dir, {"AKOFLOW_SITES": str(sites)})
    t0 = time.time()
    ak(["submit", str(wf), "--site", site], env)
    st = _wait(env, timeout)
    if st["status"] != "FINISHED":
        raise BenchError(f"{site}: workflow ended {st['status']}: {st['counts']}")
    span = iso_ts(st["finished_at"]) - t0
    starts = [json.loads(p.read_text())["started"]
              for p in Path(st["run_dir"]).glob("pilots/*/state.json")]
    sbatch = read_calls(log, "sbatch")
    return {"span": span, "wait": min(starts) - t0 if starts else None, "sbatch": len(sbatch),
            "squeue": len(read_calls(log, "squeue")), "once": _once(env), "env": env,
            "pilots": sum(1 for c in sbatch if "/pilots/logs/" in c.argv[-1])}


def local(wf: Path, scratch: Path, sites: Path) -> tuple[float, dict[str, str]]:
    env = ak_env(scratch / "home", None, {"AKOFLOW_SITES": str(sites)})
    t0 = time.time()
    ak(["run", str(wf), "--site", "localn", "--quiet"], env)
    return time.time() - t0, env


def lineage(env: dict[str, str]) -> set[tuple[str, str, str]]:
    rows = json.loads(ak(["files", "1", "--json"], env).stdout)
    return {(r["activity"], r["role"], r["path"]) for r in rows
            if r["role"] in ("used", "generated")}


def srun_steps(scratch: Path, n: int = 30) -> float:
    """Seconds per no-op `srun --overlap` step inside one allocation."""
    out = scratch / "steps.out"
    script = scratch / "steps.sh"
    script.write_text("#!/bin/bash\n#SBATCH --job-name=bench.steps\n#SBATCH --cpus-per-task=1\n"
                      f"#SBATCH --output={out}\nt0=$(date +%s.%N)\n"
                      f"for i in $(seq {n}); do srun --overlap -N1 -n1 true; done\n"
                      "echo \"$t0 $(date +%s.%N)\"\n")
    job = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True,
                         text=True, check=True).stdout.strip().split(";")[0]
    deadline = time.time() + 600
    while any(j == job for j, _, _ in squeue_rows()) and time.time() < deadline:
        time.sleep(1)
    time.sleep(1)
    t0, t1 = (float(x) for x in out.read_text().split()[-2:])
    return (t1 - t0) / n


def _per_minute(run: dict[str, Any]) -> str:
    """squeue calls, and per minute of the run (every minute begun counts whole)."""
    minutes = max(1, math.ceil(run["span"] / 60))
    return f"{run['squeue']} in {run['span']:.0f} s, {run['squeue'] / minutes:.1f} per minute"


def part_packing(args: argparse.Namespace, scratch: Path, trace: Path,
                 row: Any) -> None:
    scratch.mkdir(parents=True, exist_ok=True)
    sites = _sites(scratch, args.pack_cpus)
    noop, sleeps = scratch / "noop.yaml", scratch / "sleeps.yaml"
    env0 = ak_env(scratch / "import", None)
    ak(["import", "wfformat", str(trace), "--noop", "-o", str(noop)], env0)
    ak(["import", "wfformat", str(trace), "--scale", str(args.pack_scale), "-o", str(sleeps)],
       env0)
    cpus = args.pack_cpus

    p = submitted(noop, "packed", scratch / "noop-packed", sites, args.timeout)
    row("packing", "Montage noop, packed: makespan", f"{p['span']:.1f} s (target <= 30 s; "
        f"first allocation's wait {p['wait']:.1f} s; all 619 FINISHED in one attempt: "
        f"{'yes' if p['once'] else 'NO'})")
    row("packing", "Montage noop, packed: sbatch calls", f"{p['sbatch']} (target <= 5; "
        f"{p['pilots']} for extra allocations, the rest the dispatcher chain)")
    row("packing", "Montage noop, packed: queue listings", _per_minute(p))
    if not args.no_unpacked:
        u = submitted(noop, "slurm", scratch / "noop-unpacked", sites, args.timeout)
        row("packing", "Montage noop, unpacked (a job per activity): makespan",
            f"{u['span']:.1f} s, {u['sbatch']} sbatch, queue listings {_per_minute(u)}")
        row("packing", "ratio packed / unpacked", f"{p['span'] / u['span']:.3f}x makespan, "
            f"{p['sbatch'] / max(u['sbatch'], 1):.3f}x sbatch calls")

    span_local, env_local = local(sleeps, scratch / "sleeps-local", sites)
    q = submitted(sleeps, "packed", scratch / "sleeps-packed", sites, args.timeout)
    base = span_local + (q["wait"] or 0.0)
    row("packing", f"Montage sleeps x{args.pack_scale:g}, local on {cpus} cpus: makespan",
        f"{span_local:.1f} s")
    row("packing", f"Montage sleeps x{args.pack_scale:g}, packed on {cpus} cpus: makespan",
        f"{q['span']:.1f} s (first allocation's wait {q['wait']:.1f} s; {q['sbatch']} sbatch;"
        f" queue listings {_per_minute(q)})")
    row("packing", "ratio packed / (local + first wait)", f"{q['span'] / base:.2f}x "
        "(target <= 1.3x)")
    same = lineage(q["env"]) == lineage(env_local)
    row("packing", "file lineage packed == local", f"{'yes' if same else 'NO'} "
        f"({len(lineage(env_local))} used/generated rows)")

    per_step = srun_steps(scratch)
    per_task = (p["span"] - (p["wait"] or 0.0)) / 619 * cpus
    row("packing", "one srun step in an allocation vs one packed task", f"{per_step * 1e3:.0f} "
        f"ms vs {per_task * 1e3:.1f} ms of a cpu (noop Montage through an agent)")
    if os.environ.get("AKOFLOW_BENCH_KEEP"):
        print(f"kept {scratch}")
