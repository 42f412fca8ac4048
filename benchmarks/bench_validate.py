"""Time `load_workflow` (read + YAML + validation + DAG check) on the 6,448-activity Montage.

Prints one `figure value` line per measurement (median of 3 runs, seconds).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_montage import montage_shape

from akoflow.spec import Dag, dump_yaml, load_workflow


def _median(fn: object, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    spec = montage_shape()
    n = len(spec.activities)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "montage.yaml"
        path.write_text(dump_yaml(spec), encoding="utf-8")
        loaded = load_workflow(path)
        assert len(loaded.activities) == n
        print(f"montage_activities {n}")
        print(f"montage_yaml_bytes {path.stat().st_size}")
        print(f"validate_montage_{n}_s {_median(lambda: load_workflow(path)):.3f}")
        topo = _median(lambda: Dag.from_spec(loaded).topological_order())
        print(f"dag_topo_montage_{n}_s {topo:.3f}")
        print(f"dump_montage_{n}_s {_median(lambda: dump_yaml(loaded)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
