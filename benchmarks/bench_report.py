"""The HTML run report of the WfCommons Montage trace (619 activities, ~26,000 file records).

Runs the trace once (scale 0: the recorded runtimes become no sleep at all) in a fresh
AKOFLOW_HOME under ~/.cache (not /tmp, which is slow on the machines this is run on), then
times `write_report` (median of --repeat calls; the manifest is warm, as it is right after a
run) and prints the page size. Targets: report_montage_s <= 3, report_montage_mb <= 5.
Usage: python benchmarks/bench_report.py [--repeat N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import cleanup, fresh_home, median_of, trace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the home and the report")
    args = ap.parse_args()
    home = fresh_home("report")
    os.environ["AKOFLOW_HOME"] = str(home)
    os.environ.setdefault("AKOFLOW_SAMPLE_INTERVAL", "0.1")
    # Imported after AKOFLOW_HOME is set: the service reads it when opening the manifest.
    from akoflow import service
    from akoflow.provenance.report import write_report
    from akoflow.spec import import_wfformat

    out = home / "montage.html"
    m = service.open_manifest()
    try:
        spec = import_wfformat(trace("montage-chameleon-2mass-025d-001.json"), scale=0)
        wf = service.register(m, spec)
        status = service.run(m, wf.id)
        if status != "FINISHED":
            raise SystemExit(f"Montage run ended {status}")

        def once() -> float:
            start = time.perf_counter()
            write_report(m, wf.id, out)
            return time.perf_counter() - start

        seconds = median_of(args.repeat, once)
        size_mb = Path(out).stat().st_size / 1e6
    finally:
        m.close()
    print(f"report_montage_s {seconds:.3f}", flush=True)
    print(f"report_montage_mb {size_mb:.3f}", flush=True)
    if args.keep:
        print(f"# kept {out}", flush=True)
    else:
        cleanup(home)


if __name__ == "__main__":
    main()
