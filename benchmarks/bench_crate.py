"""`akoflow crate` of a run whose one task wrote 67 MB of text (base64 of random bytes, so it
does not compress to nothing) to stdout (median wall seconds).

The run is made once; the crate is packed `--repeat` times. `--baseline PYTHON` packs the
same run with another akoflow install (an earlier commit) alternately with this one, and
prints its figure and the ratio (this / baseline).
Usage: python benchmarks/bench_crate.py [--repeat N] [--baseline PYTHON]
"""

from __future__ import annotations

import argparse
import statistics
import zipfile

from _common import akoflow, cleanup, figure, fresh_home, precompile

LOUD = """name: loud
spec:
  activities:
    - name: talk
      run: |
        head -c 50250000 /dev/urandom | base64 -w 100
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline", metavar="PYTHON")
    args = ap.parse_args()
    precompile()
    home = fresh_home("crate")
    wf = home / "loud.yaml"
    wf.write_text(LOUD)
    akoflow("run", str(wf), "--quiet", home=home)
    out = home / "out.zip"
    ours, base = [], []
    for _ in range(args.repeat):
        ours.append(akoflow("crate", "1", "-o", str(out), home=home))
        if args.baseline:
            base.append(akoflow("crate", "1", "-o", str(home / "base.zip"), home=home,
                                python=args.baseline))
    with zipfile.ZipFile(out) as z:
        figure("crate_67MB_stdout_zip_bytes", out.stat().st_size, "B")
        figure("crate_67MB_stdout_log_bytes_kept", z.getinfo("logs/talk/1/stdout").file_size,
               "B")
    figure("crate_67MB_stdout_wall_median", statistics.median(ours))
    if base:
        figure("crate_67MB_stdout_baseline_wall_median", statistics.median(base))
        figure("crate_67MB_stdout_ratio", statistics.median(ours) / statistics.median(base),
               "x")
    cleanup(home)


if __name__ == "__main__":
    main()
