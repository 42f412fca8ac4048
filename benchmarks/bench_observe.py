"""What observing file operations costs: the same runs with syscall tracing (the default),
with snapshots only (the fallback) and with no observation at all, alternated run for run so
all three see the same machine; each figure is printed with its ratio to the unobserved run.

- W3: the Montage trace, 619 no-op activities (fixed per-task costs show);
- Montage doing its real I/O (`import wfformat --data`), run times scaled to short sleeps;
- the cost per traced file operation: one task opening and closing N files, traced vs not;
- the tracer's memory: peak RSS of every strace process, sampled while W3 runs;
- where a traced operation's cost goes: the same N opens under akoflow's strace command
  alone, free to run on any CPU and with tracer and task held to one CPU (a ptrace stop
  wakes the other side; on a virtual machine, waking an idle vCPU is most of the cost).

Usage: python benchmarks/bench_observe.py [--repeat N] [--scale S ...] [--ops N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import psutil
from _common import cleanup, fresh_home, precompile, trace

from akoflow.port import akoflow_argv

MODES = ("traced", "snapshots", "none")
MONTAGE = "montage-chameleon-2mass-025d-001.json"


def site_dir(base: Path) -> Path:
    """Profiles for the three modes (the local site with tracing and snapshots on or off)."""
    d = base / "sites"
    d.mkdir(parents=True, exist_ok=True)
    for mode, trace_on, snaps in (("traced", "true", "true"), ("snapshots", "false", "true"),
                                  ("none", "false", "false")):
        (d / f"obs-{mode}.yaml").write_text(
            f"name: obs-{mode}\nexecutor: local\ntrace: {trace_on}\nsnapshots: {snaps}\n")
    return d


def run_once(wf: Path, mode: str, sites: Path, watch: list[int] | None = None) -> float:
    home = fresh_home(f"obs-{mode}")
    env = {**os.environ, "AKOFLOW_HOME": str(home), "AKOFLOW_SITES": str(sites)}
    stop = threading.Event()
    sampler = None
    if watch is not None:
        sampler = threading.Thread(target=_watch_strace, args=(stop, watch), daemon=True)
        sampler.start()
    subprocess.run(["sync"], check=False)
    start = time.perf_counter()
    proc = subprocess.run([*akoflow_argv(), "run", str(wf), "--site", f"obs-{mode}",
                           "--quiet"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    stop.set()
    if sampler is not None:
        sampler.join()
    cleanup(home)
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({mode}):\n{proc.stderr[-2000:]}")
    return wall


def _watch_strace(stop: threading.Event, peaks: list[int]) -> None:
    """Peak RSS of all strace processes together, sampled every 20 ms."""
    while not stop.is_set():
        total = 0
        for p in psutil.process_iter(["name", "memory_info"]):
            if p.info["name"] == "strace" and p.info["memory_info"] is not None:
                total += p.info["memory_info"].rss
        peaks.append(total)
        stop.wait(0.02)


def compare(label: str, wf: Path, sites: Path, repeat: int) -> None:
    times: dict[str, list[float]] = {m: [] for m in MODES}
    peaks: list[int] = []
    for i in range(repeat):
        order = MODES if i % 2 == 0 else MODES[::-1]
        for mode in order:
            times[mode].append(run_once(wf, mode, sites, peaks if mode == "traced" else None))
    base = statistics.median(times["none"])
    for mode in MODES:
        med = statistics.median(times[mode])
        ratios = [a / b for a, b in zip(times[mode], times["none"])]
        print(f"{label} {mode:9}: median {med:6.2f} s  ratio to unobserved "
              f"{med / base:5.2f}x (pairs: {', '.join(f'{r:.2f}' for r in ratios)})")
    if peaks:
        print(f"{label} tracer peak RSS, all strace processes together: "
              f"{max(peaks) / 2**20:.1f} MiB")


def per_op(n: int, sites: Path, base: Path, repeat: int) -> None:
    """One task that opens and closes `n` files in the work directory (and reads them)."""
    wf = base / "ops.yaml"
    wf.write_text("name: ops\nspec:\n  activities:\n    - name: many\n      run: >-\n"
                  f"        python3 -c '[open(\"f%d\" % (i % 100), \"w\").close()"
                  f" for i in range({n})]'\n")
    t: dict[str, list[float]] = {"traced": [], "none": []}
    for i in range(repeat):
        for mode in (("traced", "none") if i % 2 == 0 else ("none", "traced")):
            t[mode].append(run_once(wf, mode, sites))
    extra = statistics.median(t["traced"]) - statistics.median(t["none"])
    print(f"per traced file operation: {1e6 * extra / n:.1f} us "
          f"({n} opens: {statistics.median(t['traced']):.2f} s traced vs "
          f"{statistics.median(t['none']):.2f} s unobserved)")


def raw_tracer(n: int, repeat: int) -> None:
    """The N opens untraced, under akoflow's strace command, and the same on one CPU."""
    from akoflow.worker import tracing

    work = fresh_home("observe-raw")
    code = f'[open("f%d" % (i % 100), "w").close() for i in range({n})]'
    argv = ["python3", "-c", code]
    traced = [*tracing.argv(str(work / "raw.strace")), *argv]
    cpu = min(os.sched_getaffinity(0))

    def one(cmd: list[str], pin: bool) -> float:
        start = time.perf_counter()
        subprocess.run(cmd, cwd=work, check=True,
                       preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if pin else None)
        return time.perf_counter() - start

    t: dict[str, list[float]] = {"none": [], "any CPU": [], "one CPU": []}
    for _ in range(repeat):
        t["none"].append(one(argv, False))
        t["any CPU"].append(one(traced, False))
        t["one CPU"].append(one(traced, True))
    base = statistics.median(t["none"])
    for mode in ("any CPU", "one CPU"):
        med = statistics.median(t[mode])
        print(f"strace alone, tracer and task on {mode:7}: {1e6 * (med - base) / n:6.1f} us "
              f"per open ({med:.2f} s vs {base:.2f} s untraced, {med / base:.1f}x)")
    cleanup(work)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scale", type=float, nargs="*", default=[0.001, 0.01],
                    help="trace runtime x this = each Montage task's sleep")
    ap.add_argument("--ops", type=int, default=20000)
    args = ap.parse_args()
    precompile()
    base = fresh_home("observe")
    sites = site_dir(base)
    env = {**os.environ, "AKOFLOW_HOME": str(base)}
    w3 = base / "w3.yaml"
    subprocess.run([*akoflow_argv(), "import", "wfformat", str(trace(MONTAGE)), "--noop",
                    "-o", str(w3)], env=env, check=True, capture_output=True)
    compare("W3 (619 no-op)", w3, sites, args.repeat)
    for scale in args.scale:
        wf = base / f"montage-{scale}.yaml"
        subprocess.run([*akoflow_argv(), "import", "wfformat", str(trace(MONTAGE)), "--data",
                        str(base / f"data-{scale}"), "--scale", str(scale), "-o", str(wf)],
                       env=env, check=True, capture_output=True)
        compare(f"Montage real I/O, sleeps x{scale}", wf, sites, max(3, args.repeat // 2))
    per_op(args.ops, sites, base, max(3, args.repeat // 2))
    raw_tracer(args.ops, max(3, args.repeat // 2))
    cleanup(base)


if __name__ == "__main__":
    main()
