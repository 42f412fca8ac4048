"""Container start overhead per activity: akoflow's Docker executor vs `docker run` by hand.

by hand:  N times `docker run --rm --network none IMAGE true`, one after another; the median
          wall time of one such command.
akoflow:  a chain of N no-op activities (`run: "true"`, each depending on the previous one)
          through `akoflow run --site docker`; the median time between the submissions of
          two consecutive activities, i.e. everything one activity costs: dispatch cycle,
          create, start, wait, logs, snapshots, result.json, remove, ingest.
Needs root and a dockerd (brought up by tests/infra/docker.py, image akoflow-busybox:test).
Prints figures (and the ratio; target: akoflow within 1.2x); asserts nothing.
Usage: python benchmarks/bench_docker.py [-n 100]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time

from _common import ROOT, akoflow, cleanup, figure, fresh_home

sys.path.insert(0, str(ROOT))

from akoflow.manifest import Manifest
from tests.infra.docker import DockerHost, ensure_docker


def by_hand(host: DockerHost, n: int) -> list[float]:
    argv = [host.cli, "run", "--rm", "--network", "none", host.image, "true"]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def chain_yaml(image: str, n: int) -> str:
    lines = [f"name: bench-docker\nspec:\n  image: {image}\n  activities:"]
    for i in range(n):
        dep = f"\n      dependsOn: [a{i - 1}]" if i else ""
        lines.append(f"    - name: a{i}\n      run: \"true\"{dep}")
    return "\n".join(lines) + "\n"


def through_akoflow(host: DockerHost, n: int) -> tuple[list[float], float]:
    """(gaps between consecutive submissions, wall seconds of the whole `akoflow run`)."""
    home = fresh_home("docker")
    try:
        wf = home / "chain.yaml"
        wf.write_text(chain_yaml(host.image, n))
        wall = akoflow("run", str(wf), "--site", "docker", "--quiet", home=home)
        m = Manifest(home / "manifest.db")
        try:
            subs = sorted(a.submitted_at for a in m.attempts(1))
            if len(subs) != n or {a.status for a in m.attempts(1)} != {"FINISHED"}:
                raise SystemExit("the chain did not finish cleanly")
        finally:
            m.close()
        return [b - a for a, b in itertools.pairwise(subs)], wall
    finally:
        host.remove(f"akoflow.home={home.resolve()}")
        cleanup(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="activities / containers (100)")
    args = parser.parse_args()
    host = ensure_docker()
    print(f"dockerd {host.server_version}, {host.ncpu} cpus, image {host.image}", flush=True)
    by_hand(host, 3)  # warm the daemon and the page cache
    hand = statistics.median(by_hand(host, args.n))
    gaps, wall = through_akoflow(host, args.n)
    ako = statistics.median(gaps)
    figure(f"docker run --rm true by hand, median of {args.n}", hand)
    figure(f"akoflow per activity (chain of {args.n}), median", ako)
    figure("akoflow per activity, mean incl. start-up (wall / n)", wall / args.n)
    figure("ratio akoflow / by hand (target <= 1.2)", ako / hand, "x")


if __name__ == "__main__":
    main()
