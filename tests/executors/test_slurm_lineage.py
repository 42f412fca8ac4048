"""Exact lineage on the real Slurm cluster: every attempt is a batch job whose `akoflow
worker` traces its task; writers go out as one job array, readers are queued ahead with
`afterok` on them, and several run at once in the one shared work directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ak
from tests.core.test_lineage_exact import as_plain, concurrent_workflow, observed
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401

pytestmark = pytest.mark.infra


def test_exact_lineage_in_slurm_arrays_and_chained_jobs(slurm_cluster: object, akhome: Path,
                                                          tmp_path: Path) -> None:
    wf, truth = concurrent_workflow(tmp_path, n=8)
    text = wf.read_text().replace("runtime: wide", "runtime: slurm")
    wf.write_text(text)
    proc = ak("run", str(wf), home=akhome, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got, rows = observed(akhome, {})
    assert as_plain(got) == as_plain(truth)
    assert {r["observed"] for r in rows} == {"trace"} and not any(r["ambiguous"] for r in rows)
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    jobs = {a["name"]: a["job_id"] for a in desc["activities"]}
    assert any("_" in jobs[f"w{i}"] for i in range(8)), jobs  # an array of writers
