"""A Pegasus WMS 5 workflow with real executables and replica files, run by `akoflow run`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import ak, work_dir

PREP = """#!/bin/bash
# prep IN UPPER COUNT: upper-case IN, count its lines
set -e
tr a-z A-Z < "$1" > "$2"
wc -l < "$1" | tr -d ' ' > "$3"
"""
COMBINE = f"""#!{sys.executable}
# combine UPPER COUNT CONFIG: print a report (to stdout, which Pegasus redirects)
import os, sys
upper, count, config = (open(p).read().strip() for p in sys.argv[1:4])
print(os.environ["GREETING"], os.environ["AKOFLOW_CPUS"], config)
print(count, "lines:", upper.replace(chr(10), "|"))
"""
WORKFLOW = """\
pegasus: "5.0.4"
name: report
replicaCatalog:
  replicas:
    - lfn: input.txt
      pfns: [{{site: local, pfn: "file://{data}/input.txt"}}]
    - lfn: conf/settings.txt
      pfns: [{{site: local, pfn: "file://{data}/settings.txt"}}]
transformationCatalog:
  transformations:
    - name: prep
      sites: [{{name: local, pfn: "{bin}/prep", type: installed}}]
    - name: combine
      sites: [{{name: local, pfn: "file://{bin}/combine.py", type: stageable}}]
      profiles:
        env: {{GREETING: hello}}
        pegasus: {{cores: 2, memory: 64}}
jobs:
  - type: job
    name: prep
    id: ID1
    arguments: [input.txt, out/upper.txt, count.txt]
    uses:
      - {{lfn: input.txt, type: input}}
      - {{lfn: out/upper.txt, type: output}}
      - {{lfn: count.txt, type: output}}
  - type: job
    name: combine
    id: ID2
    arguments: [out/upper.txt, count.txt, conf/settings.txt]
    stdout: final.txt
    uses:
      - {{lfn: out/upper.txt, type: input}}
      - {{lfn: count.txt, type: input}}
      - {{lfn: conf/settings.txt, type: input}}
      - {{lfn: final.txt, type: output}}
"""


@pytest.fixture
def pegasus_wf(tmp_path: Path) -> Path:
    """The workflow file, its two executables and its two replica files, in tmp_path."""
    bin_dir, data = tmp_path / "bin", tmp_path / "data"
    bin_dir.mkdir()
    data.mkdir()
    for name, text in (("prep", PREP), ("combine.py", COMBINE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (data / "input.txt").write_text("alpha\nbeta\n")
    (data / "settings.txt").write_text("mode=fast\n")
    wf = tmp_path / "report.yml"
    wf.write_text(WORKFLOW.format(bin=bin_dir, data=data))
    return wf


def _files(home: Path, wf_id: str) -> dict[tuple[str, str], set[str]]:
    """(path, role) → the activities credited with it."""
    out: dict[tuple[str, str], set[str]] = {}
    for r in json.loads(ak("files", wf_id, "--json", home=home, check=True).stdout):
        out.setdefault((r["path"], r["role"]), set()).add(r["activity"])
    return out


def test_pegasus_workflow_runs_with_outputs_and_lineage(akhome: Path, pegasus_wf: Path) -> None:
    out = ak("run", str(pegasus_wf), "--json", home=akhome)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    wf_id = str(status["id"])
    work = work_dir(akhome, wf_id)
    assert (work / "final.txt").read_text() == "hello 2 mode=fast\n2 lines: ALPHA|BETA\n"
    assert (work / "out" / "upper.txt").read_text() == "ALPHA\nBETA\n"
    assert (work / "input.txt").read_text() == "alpha\nbeta\n"  # a copy, not a link
    assert not (work / "input.txt").is_symlink()

    files = _files(akhome, wf_id)
    assert files[("input.txt", "generated")] == {"stage_in"}
    assert files[("conf/settings.txt", "generated")] == {"stage_in"}
    assert files[("out/upper.txt", "generated")] == files[("count.txt", "generated")] == {
        "prep_ID1"}
    assert files[("final.txt", "generated")] == {"combine_ID2"}
    # `used` is what an ancestor made and was there before (snapshots): a superset of reads.
    assert "prep_ID1" in files[("input.txt", "used")]
    assert files[("out/upper.txt", "used")] == {"combine_ID2"}
    assert files[("conf/settings.txt", "used")] >= {"combine_ID2"}

    graph = json.loads(ak("lineage", wf_id, "--file", "final.txt", "--direction", "up",
                          "--format", "json", home=akhome, check=True).stdout)
    text = json.dumps(graph)
    for name in ("stage_in", "prep_ID1", "combine_ID2", "input.txt", "out/upper.txt"):
        assert name in text, name

    described = ak("describe", wf_id, "--json", home=akhome, check=True).stdout
    assert "combine_ID2" in described and "prep_ID1" in described


def test_missing_replica_fails_naming_the_file(akhome: Path, pegasus_wf: Path) -> None:
    missing = pegasus_wf.parent / "data" / "settings.txt"
    missing.unlink()
    out = ak("run", str(pegasus_wf), home=akhome)
    assert out.returncode == 1
    logs = ak("status", "1", home=akhome, check=True).stdout
    assert f"akoflow: input conf/settings.txt: replica {missing} does not exist" in logs
    status = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert status["counts"] == {"FAILED": 1, "SKIPPED": 2}
    assert [f["activity"] for f in status["failures"]] == ["stage_in"]


def test_import_then_run_the_akoflow_yaml(akhome: Path, pegasus_wf: Path,
                                          tmp_path: Path) -> None:
    yaml_out = tmp_path / "report.yaml"
    ak("import", "pegasus", str(pegasus_wf), "-o", str(yaml_out), home=akhome, check=True)
    assert "pegasus" not in yaml_out.read_text().split("\n", 1)[0]
    out = ak("run", str(yaml_out), "--quiet", home=akhome)
    assert out.returncode == 0, out.stderr
    wf_id = json.loads(ak("list", "--json", home=akhome).stdout)[0]["id"]
    assert (work_dir(akhome, wf_id) / "final.txt").read_text().startswith("hello")
