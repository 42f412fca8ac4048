"""Generate the AkôFlow Montage DAG shape at any size (default: the 6,448-activity shape).

mProject xN -> mDiffFit xD (each on two overlapping projections) -> mConcatFit -> mBgModel
-> mBackground xN (each on mBgModel and its own mProject) -> mImgtbl -> mAdd -> mViewer.
With D = 3N + 3 the total is 5N + 8, so N = 1288 gives 6,448 activities (for N < 8 fewer
than 3N + 3 distinct pairs exist and D is all of them).

Usage: python benchmarks/gen_montage.py OUT.yaml [N_IMAGES]
"""

from __future__ import annotations

import sys
from pathlib import Path

from akoflow.spec import ActivitySpec, WorkflowSpec, dump_yaml
from akoflow.spec.models import Resources

DEFAULT_IMAGES = 1288  # 5 * 1288 + 8 = 6448 activities


def _pairs(n_images: int, n_diffs: int) -> list[tuple[int, int]]:
    """Overlapping image pairs: neighbours at distance 1, then 2, 3, … (deterministic)."""
    out: list[tuple[int, int]] = []
    dist = 1
    while len(out) < n_diffs and dist < n_images:
        for i in range(n_images - dist):
            out.append((i, i + dist))
            if len(out) == n_diffs:
                break
        dist += 1
    return out


def montage_shape(n_images: int = DEFAULT_IMAGES, n_diffs: int | None = None) -> WorkflowSpec:
    """The Montage mosaic DAG with `n_images` input images (5N + 8 activities by default)."""
    if n_images < 2:
        raise ValueError("Montage needs at least 2 images")
    diffs = _pairs(n_images, 3 * n_images + 3 if n_diffs is None else n_diffs)
    small = Resources(cpu=1, memory=512 * 1024**2, time_limit=600)
    big = Resources(cpu=4, memory=8 * 1024**3, time_limit=3600)
    acts: list[ActivitySpec] = []

    def add(name: str, run: str, deps: list[str], res: Resources = small) -> None:
        acts.append(ActivitySpec(name=name, run=run, depends_on=deps, resources=res))

    for i in range(n_images):
        add(f"mProject_{i:05d}", f"mProject -X raw_{i:05d}.fits p_{i:05d}.fits region.hdr\n", [])
    for k, (a, b) in enumerate(diffs):
        add(
            f"mDiffFit_{k:05d}",
            f"mDiffFit -d -s fit_{k:05d}.txt p_{a:05d}.fits p_{b:05d}.fits diff_{k:05d}.fits "
            "region.hdr\n",
            [f"mProject_{a:05d}", f"mProject_{b:05d}"],
        )
    add("mConcatFit", "mConcatFit statfile.tbl fits.tbl .\n", [a.name for a in acts[n_images:]])
    add("mBgModel", "mBgModel -i 100000 images.tbl fits.tbl corrections.tbl\n", ["mConcatFit"])
    for i in range(n_images):
        add(
            f"mBackground_{i:05d}",
            f"mBackground -t p_{i:05d}.fits c_{i:05d}.fits projected.tbl corrections.tbl\n",
            ["mBgModel", f"mProject_{i:05d}"],
        )
    add(
        "mImgtbl",
        "mImgtbl . -t corrected.tbl cimages.tbl\n",
        [f"mBackground_{i:05d}" for i in range(n_images)],
    )
    add("mAdd", "mAdd -e cimages.tbl region.hdr mosaic.fits\n", ["mImgtbl"], big)
    add(
        "mViewer",
        "mViewer -ct 1 -gray mosaic.fits -2s max gaussian-log -out mosaic.png\n",
        ["mAdd"],
    )
    return WorkflowSpec(name=f"montage-{len(acts)}", runtime="local", activities=acts)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    spec = montage_shape(int(argv[2]) if len(argv) == 3 else DEFAULT_IMAGES)
    Path(argv[1]).write_text(dump_yaml(spec), encoding="utf-8")
    print(f"montage_activities {len(spec.activities)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
