"""A task that creates 100,000 files, then 20 tasks that read none of them: with exact lineage
the manifest holds 100,000 `generated` rows and no `used` ones (snapshots once credited every
later task with every file: 2 million rows, and `prov` ran for over 17 minutes). Prints the
run's wall time and, for `files --json`, `prov` and `report`, wall seconds and peak RSS.

Usage: python benchmarks/bench_manyfiles.py [--files N] [--readers K]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from _common import cleanup, fresh_home

from akoflow.port import akoflow_argv


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process (its own rusage, from wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode})")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--readers", type=int, default=20)
    args = ap.parse_args()
    home = fresh_home("manyfiles")
    env = {**os.environ, "AKOFLOW_HOME": str(home)}
    wf = home / "wf.yaml"
    acts = ["    - name: maker\n      run: >-\n        python3 -c 'import os;"
            " os.makedirs(\"d\", exist_ok=True);"
            f" [open(\"d/f%d\" % i, \"w\").close() for i in range({args.files})]'\n"]
    acts += [f"    - {{name: r{i}, run: 'true', dependsOn: [maker]}}\n"
             for i in range(args.readers)]
    wf.write_text("name: many\nspec:\n  activities:\n" + "".join(acts))
    ak = akoflow_argv()
    try:
        wall, rss = timed([*ak, "run", str(wf), "--quiet"], env)
        print(f"run ({args.files} files by one task, {args.readers} readers): {wall:.2f} s, "
              f"dispatcher peak RSS {rss:.0f} MiB")
        for label, argv in (
                ("files --json", [*ak, "files", "1", "--json"]),
                ("prov --format prov-json", [*ak, "prov", "1", "--format", "prov-json",
                                             "-o", str(home / "p.json")]),
                ("report", [*ak, "report", "1", "-o", str(home / "r.html")])):
            wall, rss = timed(argv, env)
            print(f"{label:25} {wall:6.2f} s  peak RSS {rss:6.0f} MiB  (target <= 30 s, "
                  "<= 1 GB)")
        rows = subprocess.run([*ak, "files", "1", "--json"], env=env, capture_output=True,
                              text=True).stdout.count('"role": "used"')
        print(f"used rows: {rows}")
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
