"""Benchmark: PROV-JSON export of a finished 10,000-activity run.

Builds a synthetic finished run in a temporary manifest through the manifest API (register,
begin_attempts, complete_attempt, as the dispatcher would), then exports it in a fresh child
process so the peak RSS reported is the export's alone, not the set-up's.

    python benchmarks/bench_prov.py [--activities 10000]

Prints one `name value` line per figure. Targets: prov_json_10000_s <= 10, peak <= 500 MB.
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from akoflow.manifest import Intent, Manifest
from akoflow.port import AttemptOutcome, FileEntry, MetricSample, Resources
from akoflow.spec.models import ActivitySpec, WorkflowSpec

log = logging.getLogger("bench_prov")


def build_run(db: Path, n: int) -> int:
    """A finished binary-tree workflow: activity i reads its parent's file, writes its own."""
    m = Manifest(db, journal_mode="MEMORY")
    acts = [ActivitySpec(name="t0", run="true")]
    acts += [ActivitySpec(name=f"t{i}", run="true", depends_on=[f"t{(i - 1) // 2}"])
             for i in range(1, n)]
    wf = m.register_workflow(WorkflowSpec(name="bench", activities=acts),
                             run_root=str(db.parent / "runs"))
    t0 = time.time()
    while True:
        ready = m.ready_activities(wf.id)
        if not ready:
            break
        intents = [Intent(activity_id=a.id, number=a.attempts + 1, site="local",
                          job_name=f"akoflow.{wf.id}.{a.name}.1",
                          attempt_dir=f"/runs/{a.name}/1", resources=Resources(cpu=1.0),
                          node="node1") for a in ready]
        ids = m.begin_attempts(wf.id, intents)
        for act, attempt_id in zip(ready, ids, strict=True):
            assert attempt_id is not None
            m.complete_attempt(wf.id, attempt_id, _outcome(act.seq, t0))
    m.finalize_workflow(wf.id)
    m.close()
    return wf.id


def _outcome(i: int, t0: float) -> AttemptOutcome:
    files = [FileEntry(f"data/t{i}.out", 1024 + i, t0 + i, "generated", f"sha256:{i:064x}")]
    if i:
        parent = (i - 1) // 2
        files.append(FileEntry(f"data/t{parent}.out", 1024 + parent, t0 + parent, "used",
                               f"sha256:{parent:064x}"))
    else:
        files.append(FileEntry("input.csv", 10, t0 - 100, "pre-existing"))
    return AttemptOutcome(
        exit_code=0, reason=None, started_at=t0 + i, finished_at=t0 + i + 0.5, node="node1",
        cpu_time=0.4, peak_rss=50_000_000, stdout_tail="ok\n",
        metrics=[MetricSample(t0 + i, 90.0, 40_000_000, 80_000_000, 0, 1024, 1, 1)],
        files=files)


def export_child(db: Path, wf_id: int, n: int) -> None:
    """Runs in a fresh interpreter: time the export, then report this process's peak RSS."""
    from akoflow.provenance.prov import export

    m = Manifest(db)
    t = time.perf_counter()
    text = export(m, wf_id, "prov-json")
    elapsed = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    sys.stdout.write(f"prov_json_{n}_s {elapsed:.2f}\n")
    sys.stdout.write(f"prov_json_{n}_peak_mb {peak_kb / 1024:.0f}\n")
    sys.stdout.write(f"prov_json_{n}_mb {len(text) / 1e6:.1f}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--activities", type=int, default=10_000)
    ap.add_argument("--child", nargs=2, metavar=("DB", "WF"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.child:
        export_child(Path(args.child[0]), int(args.child[1]), args.activities)
        return
    # tmpfs when there is one: the set-up commits 10,000 transactions, and fsync on a disk
    # would make it the slowest part of the benchmark without measuring anything.
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        db = Path(tmp) / "manifest.db"
        t = time.perf_counter()
        wf_id = build_run(db, args.activities)
        sys.stdout.write(f"setup_{args.activities}_s {time.perf_counter() - t:.2f}\n")
        sys.stdout.flush()
        subprocess.run([sys.executable, __file__, "--activities", str(args.activities),
                        "--child", str(db), str(wf_id)], check=True)


if __name__ == "__main__":
    main()
