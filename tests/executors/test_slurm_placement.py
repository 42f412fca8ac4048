"""AkôScore placement enacted on the real heterogeneous Slurm cluster (`small`: 2 cpus,
2000 MB; `big`: 4 cpus, 8000 MB, declared twice as fast in the site profile)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ak
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401

pytestmark = pytest.mark.infra

PROFILE = """\
name: placed
extends: slurm
placement: akoscore
nodes:
  - {name: small, cpus: 2, memory: 2000M, speed: 1.0}
  - {name: big, cpus: 4, memory: 8000M, speed: 2.0}
"""


def test_memory_and_alpha_decide_the_node(slurm_cluster: object, akhome: Path,
                                          tmp_path: Path) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "placed.yaml").write_text(PROFILE)
    wf = tmp_path / "wf.yaml"
    wf.write_text("""\
name: placement
spec:
  runtime: placed
  activities:
    - name: tight
      memoryLimit: 500Mi
      alpha: 1
      run: echo "$SLURMD_NODENAME" > tight.node
    - name: huge
      memoryLimit: 5000Mi
      alpha: 1
      dependsOn: [tight]
      run: echo "$SLURMD_NODENAME" > huge.node
    - name: fast
      memoryLimit: 500Mi
      alpha: 0
      dependsOn: [huge]
      run: echo "$SLURMD_NODENAME" > fast.node
""")
    env = {"AKOFLOW_SITES": str(sites)}
    proc = ak("run", str(wf), home=akhome, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = json.loads(ak("status", "1", "--json", home=akhome, env=env, check=True).stdout)
    run_dir = Path(st["run_dir"])
    ran_on = {n: (run_dir / "work" / f"{n}.node").read_text().strip()
              for n in ("huge", "tight", "fast")}
    # On an idle cluster alpha 1 packs 500Mi tightly (small); only `big` can hold 5000Mi;
    # alpha 0 goes where it runs fastest (big).
    assert ran_on == {"huge": "big", "tight": "small", "fast": "big"}
    for name, node in ran_on.items():
        script = (run_dir / "activities" / f"{name}.1" / "job.sh").read_text()
        assert f"#SBATCH --nodelist={node}" in script
    why = json.loads(ak("explain", "1", "tight", "--json", home=akhome, env=env,
                        check=True).stdout)
    assert why["node"] == "small" and why["policy"] == "akoscore"
    assert set(why["scores"]) == {"small", "big"}
    assert why["scores"]["small"] > why["scores"]["big"]
    huge = json.loads(ak("explain", "1", "huge", "--json", home=akhome, env=env,
                         check=True).stdout)
    assert set(huge["scores"]) == {"big"}  # small was never a candidate
    text = ak("explain", "1", "fast", home=akhome, env=env, check=True).stdout
    assert "big" in text and "chosen" in text
