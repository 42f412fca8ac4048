"""akoflow on the real local Slurm cluster (tests/infra/slurm.py): figures for the README.

fanout:    sbatch/squeue calls for one root -> N children -> join, counted by wrapper clients.
montage:   the WfCommons Montage trace as sleeps: makespan and overhead of akoflow vs the same
           jobs sbatch'ed by hand with afterok dependencies.
snakemake: the same DAG through Snakemake's Slurm executor (own venv), or why it cannot run.
packing:   Montage packed into allocations vs unpacked and vs a local run (_packing_bench.py).
Prints figures; asserts nothing about timings. Runs one part after another, never in parallel.
Usage: python benchmarks/bench_slurm.py [--part fanout|montage|snakemake|packing|all]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import trace
from _packing_bench import part_packing
from _slurm_bench import (
    ACTIVE,
    BenchError,
    Dag,
    ak,
    ak_env,
    cluster_slots,
    filter_yaml,
    iso_ts,
    make_wrappers,
    read_calls,
    run_by_hand,
    split_sbatch,
    squeue_rows,
)

TRACE = trace("montage-chameleon-2mass-025d-001.json")
SNAKE_VENV = Path("/root/tmp/snake-venv")
# The plugin's default status command is sacct, which fails here (no accounting storage) and
# leaves it waiting forever; squeue is used only if 3 x the first status delay < MinJobAge (30 s).
SNAKE_SQUEUE = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks",
                "5", "--slurm-no-account"]
ROWS: list[tuple[str, str, str]] = []  # (part, figure, value) for the summary table


def row(part: str, name: str, value: str) -> None:
    ROWS.append((part, name, value))
    print(f"[{part}] {name}: {value}", flush=True)


def run_akoflow(wf: Path, scratch: Path, args: argparse.Namespace) -> tuple[float, Path, Path]:
    """`akoflow run` (foreground loop) or `akoflow submit` (chain of dispatcher jobs) with
    counting wrappers on PATH, in a fresh AKOFLOW_HOME per try; another try only when another
    client cancelled our jobs. Returns (makespan, run dir, call log)."""
    for attempt in range(1, args.tries + 1):
        try:
            return _akoflow_once(wf, scratch / f"try{attempt}", args)
        except Interfered as exc:
            print(f"note: try {attempt}: {exc}", file=sys.stderr, flush=True)
    raise BenchError(f"{args.tries} tries were all cancelled by other clients of the cluster")


class Interfered(BenchError):
    """Our jobs were scancelled by someone else: the figure would be meaningless."""


def _akoflow_once(wf: Path, scratch: Path, args: argparse.Namespace) -> tuple[float, Path, Path]:
    bin_dir, log = make_wrappers(scratch)
    wait_quiet()
    spacing = args.chain_spacing
    extra = {"AKOFLOW_CHAIN_SPACING": str(spacing)} if spacing is not None else {}
    env = ak_env(scratch / "home", bin_dir, extra)
    t0 = time.time()
    if args.mode == "run":
        proc = ak(["run", str(wf), "--site", "slurm", "--json"], env, check=False)
        if proc.returncode not in (0, 1):
            raise BenchError(f"akoflow run exited {proc.returncode}: {proc.stderr[-400:]}")
        st = json.loads(proc.stdout)
    else:
        ak(["submit", str(wf), "--site", "slurm"], env)
        while True:
            st = json.loads(ak(["status", "1", "--json"], env).stdout)
            if st["status"] in ("FINISHED", "FAILED", "CANCELLED"):
                break
            time.sleep(1)
    if st["status"] != "FINISHED":
        msg = f"workflow ended {st['status']}: {st.get('counts')}"
        if not read_calls(log, "scancel"):
            raise Interfered(msg + " and akoflow called no scancel: another client cancelled "
                             "its jobs (a test's cleanup of every akoflow.* job?)")
        raise BenchError(msg)
    return iso_ts(st["finished_at"]) - t0, Path(st["run_dir"]), log


def wait_quiet(limit: float = 600) -> None:
    """Start only when no other akoflow workflow uses the shared cluster: other sessions'
    test clean-ups scancel every `akoflow.*` job, ours included."""
    t0 = time.time()
    while time.time() - t0 < limit:
        if not [r for r in squeue_rows() if r[1].startswith("akoflow.") and r[2] in ACTIVE]:
            return
        time.sleep(5)
    print(f"note: other akoflow jobs still queued after {limit:.0f}s; starting anyway",
          file=sys.stderr)


# -- part 1 -------------------------------------------------------------------------------------

def fanout_yaml(path: Path, n: int, sleep: float, join: bool) -> None:
    cmd = f"sleep {sleep:g}" if sleep > 0 else "true"
    lines = ["name: fanout", "spec:", "  activities:", f"    - {{name: root, run: '{cmd}'}}"]
    lines += [f"    - {{name: c{i}, run: '{cmd}', dependsOn: [root]}}" for i in range(n)]
    if join:
        lines.append("    - name: join\n      run: 'true'\n      dependsOn: ["
                     + ", ".join(f"c{i}" for i in range(n)) + "]")
    path.write_text("\n".join(lines) + "\n")


def part_fanout(args: argparse.Namespace, scratch: Path) -> None:
    scratch.mkdir(parents=True, exist_ok=True)
    wf = scratch / "fanout.yaml"
    fanout_yaml(wf, args.fanout, args.child_sleep, not args.no_join)
    tasks = args.fanout + 1 + (0 if args.no_join else 1)
    makespan, run_dir, log = run_akoflow(wf, scratch, args)
    split = split_sbatch(read_calls(log, "sbatch"))
    row("fanout", "activities / mode", f"{tasks} / akoflow {args.mode} --site slurm")
    row("fanout", "makespan", f"{makespan:.1f} s")
    row("fanout", "sbatch for tasks", f"{split.task_calls} ({split.array_calls} with --array, "
        f"{split.array_elements} array elements)")
    row("fanout", "sbatch for dispatcher jobs", str(split.dispatcher_calls))
    if split.other_calls:
        row("fanout", "sbatch of other jobs", str(split.other_calls))
    squeues = read_calls(log, "squeue")
    row("fanout", "squeue calls (total)", str(len(squeues)))
    if args.mode == "submit":
        cycles = sorted((run_dir / "dispatcher").glob("*.out"))
        per_job: dict[str, int] = {}
        for c in squeues:
            per_job[c.job] = per_job.get(c.job, 0) + 1
        inside = [per_job.get(p.stem.rsplit(".", 1)[-1], 0) for p in cycles]
        row("fanout", "dispatcher cycles (jobs that ran)", str(len(cycles)))
        if inside:
            row("fanout", "squeue per cycle (mean / max)",
                f"{sum(inside) / len(inside):.2f} / {max(inside)}")
    else:
        gaps = [b.ts - a.ts for a, b in itertools.pairwise(squeues)]
        rate = len(squeues) / makespan if makespan else 0.0
        row("fanout", "squeue rate (foreground loop)",
            f"{rate:.2f}/s, min gap {min(gaps, default=0):.2f} s, "
            f"median gap {sorted(gaps)[len(gaps) // 2] if gaps else 0:.2f} s")


# -- part 2 -------------------------------------------------------------------------------------

def montage_dag(args: argparse.Namespace, scratch: Path) -> tuple[Path, Dag]:
    """The imported trace (and, with --levels, its first levels only) and its DAG."""
    scratch.mkdir(parents=True, exist_ok=True)
    full = scratch / "montage-full.yaml"
    ak(["import", "wfformat", str(TRACE), "--scale", str(args.scale), "-o", str(full)],
       ak_env(scratch / "home", None))
    dag = Dag.from_yaml(full)
    if not args.levels:
        return full, dag
    sub = dag.subset(args.levels)
    path = scratch / "montage.yaml"
    filter_yaml(full, path, set(sub.tasks))
    return path, sub


def part_montage(args: argparse.Namespace, scratch: Path) -> tuple[float, float, float] | None:
    wf, dag = montage_dag(args, scratch)
    cp, slots = dag.critical_path(), cluster_slots()
    ideal = dag.ideal_makespan(slots)
    row("montage", "DAG", f"{len(dag.tasks)} tasks, {max(t.level for t in dag.tasks.values())} "
        f"levels, scale {args.scale:g}, total work {sum(t.seconds for t in dag.tasks.values()):.0f}"
        f" cpu-s")
    row("montage", "critical path", f"{cp:.1f} s")
    row("montage", f"ideal makespan on {slots} slots", f"{ideal:.1f} s (zero-overhead "
        "greedy list schedule)")
    ak_span, _, _ = run_akoflow(wf, scratch / "akoflow", args)
    row("montage", f"akoflow {args.mode} makespan", f"{ak_span:.1f} s (overhead vs critical "
        f"path {ak_span - cp:.1f} s, vs ideal {ak_span - ideal:.1f} s)")
    hand = run_by_hand(dag, f"bench.{os.getpid()}.", scratch / "hand", dict(os.environ))
    bad = {s for s in hand.ended.values() if s not in ("COMPLETED", "ENDED_UNSEEN")}
    if bad:
        raise BenchError(f"hand-submitted jobs ended {sorted(bad)}")
    row("montage", "hand sbatch+afterok makespan", f"{hand.makespan:.1f} s (overhead vs "
        f"critical path {hand.makespan - cp:.1f} s, vs ideal {hand.makespan - ideal:.1f} s; "
        f"{len(dag.tasks)} sbatch in {hand.submit_seconds:.1f} s)")
    row("montage", "ratio akoflow / hand", f"{ak_span / hand.makespan:.2f}x makespan, "
        f"{(ak_span - cp) / max(hand.makespan - cp, 1e-9):.2f}x overhead (target <= 1.5x)")
    return cp, ideal, hand.makespan


# -- part 3 -------------------------------------------------------------------------------------

def snakefile(dag: Dag, partition: str) -> str:
    sinks = set(dag.tasks) - {p for t in dag.tasks.values() for p in t.parents}
    out = ["rule all:", "    input: [" + ", ".join(f"'done/{n}'" for n in sorted(sinks)) + "]",
           ""]
    for t in dag.tasks.values():
        out += [f"rule {t.name}:"]
        if t.parents:
            out.append("    input: [" + ", ".join(f"'done/{p}'" for p in t.parents) + "]")
        out += [f"    output: 'done/{t.name}'",
                f"    resources: cpus_per_task=1, mem_mb={t.mem_mb or 100}, "
                f"slurm_partition='{partition}', runtime=60",
                f"    shell: 'sleep {t.seconds:g}; touch {{output}}'", ""]
    return "\n".join(out)


def ensure_snakemake() -> Path:
    exe = SNAKE_VENV / "bin" / "snakemake"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SNAKE_VENV)], check=True)
        subprocess.run([str(SNAKE_VENV / "bin" / "pip"), "install", "-q", "snakemake",
                        "snakemake-executor-plugin-slurm"], check=True)
    return exe


def part_snakemake(args: argparse.Namespace, scratch: Path,
                   known: tuple[float, float, float] | None) -> None:
    _, dag = montage_dag(args, scratch)
    cp, ideal = dag.critical_path(), dag.ideal_makespan(cluster_slots())
    exe = ensure_snakemake()
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
    work = scratch / "snake"
    work.mkdir(parents=True, exist_ok=True)
    (work / "Snakefile").write_text(snakefile(dag, "debug"))
    argv = [str(exe), "--executor", "slurm", "--jobs", str(args.snake_jobs), "--cores", "1",
            "--latency-wait", "5", "--default-resources", "slurm_partition=debug",
            *(args.snake_args or SNAKE_SQUEUE)]
    env = {**os.environ, "PATH": f"{SNAKE_VENV / 'bin'}:{os.environ['PATH']}"}
    row("snakemake", "command", f"snakemake {version.strip()} " + " ".join(argv[1:]))
    t0 = time.time()
    try:
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired:
        done = len(list((work / "done").glob("*"))) if (work / "done").exists() else 0
        row("snakemake", "result", f"did not finish within --timeout {args.timeout:.0f} s "
            f"({done}/{len(dag.tasks)} outputs)")
        return
    span = time.time() - t0
    (scratch / "snakemake.log").write_text(proc.stdout + proc.stderr)
    done = len(list((work / "done").glob("*"))) if (work / "done").exists() else 0
    if proc.returncode != 0 or done != len(dag.tasks):
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "rror" in ln), lines[-1] if lines else "?")
        row("snakemake", "result", f"FAILED (exit {proc.returncode}, {done}/{len(dag.tasks)} "
            f"outputs after {span:.0f} s): {why.strip()[:300]}")
        return
    row("snakemake", "makespan", f"{span:.1f} s (overhead vs critical path {span - cp:.1f} s, "
        f"vs ideal {span - ideal:.1f} s)")
    if known is not None:
        row("snakemake", "ratio snakemake / hand", f"{span / known[2]:.2f}x makespan")


# -- main ---------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--part", choices=["fanout", "montage", "snakemake", "packing", "all"],
                    default="all")
    ap.add_argument("--mode", choices=["run", "submit"], default="run",
                    help="akoflow run (foreground loop) or submit (dispatcher job chain)")
    ap.add_argument("--chain-spacing", type=float, default=None,
                    help="AKOFLOW_CHAIN_SPACING for --mode submit (akoflow's default: 5 s)")
    ap.add_argument("--fanout", type=int, default=1000, help="children of the fan-out")
    ap.add_argument("--child-sleep", type=float, default=0.0, help="0: children run `true`")
    ap.add_argument("--no-join", action="store_true")
    ap.add_argument("--scale", type=float, default=1.2, help="trace runtime -> sleep seconds")
    ap.add_argument("--levels", type=int, default=0, help="only the first N levels (0: all)")
    ap.add_argument("--snake-jobs", type=int, default=100)
    ap.add_argument("--snake-args", nargs=argparse.REMAINDER, default=[],
                    help="snakemake arguments instead of the squeue settings (must come last)")
    ap.add_argument("--pack-cpus", type=int, default=2, help="cpus of a packed allocation")
    ap.add_argument("--pack-scale", type=float, default=0.01,
                    help="trace runtime -> sleep seconds for the packed/local comparison")
    ap.add_argument("--no-unpacked", action="store_true",
                    help="packing: skip the unpacked noop run (about 6 minutes)")
    ap.add_argument("--tries", type=int, default=3,
                    help="akoflow runs whose jobs another client scancelled are re-run")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--scratch", type=Path, default=Path("/root/tmp/slurmbench"))
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    scratch = args.scratch / time.strftime("%Y%m%d-%H%M%S")
    scratch.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "tests.infra.slurm"], check=True,
                   cwd=Path(__file__).resolve().parent.parent, capture_output=True)
    parts = ["fanout", "montage", "snakemake", "packing"] if args.part == "all" else [args.part]
    known = None
    try:
        for part in parts:
            if part == "fanout":
                part_fanout(args, scratch / "fanout")
            elif part == "montage":
                known = part_montage(args, scratch / "montage")
            elif part == "packing":
                part_packing(args, scratch / "packing", TRACE, row)
            else:
                part_snakemake(args, scratch / "snakemake", known)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        if ROWS:
            width = max(len(f"{p}  {n}") for p, n, _ in ROWS)
            print("\n" + "summary".center(width + 40, "-"))
            for p, n, v in ROWS:
                print(f"{f'{p}  {n}':<{width}}  {v}")
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
