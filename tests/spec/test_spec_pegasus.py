"""Pegasus WMS 5 workflows: schema checks, the mapping of jobs to activities, and errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from spec_helpers import FIXTURES, WFCOMMONS

from akoflow.spec import SpecError, SpecIssue, dump_yaml, load_workflow, parse_workflow_text
from akoflow.spec.pegasus import import_pegasus
from tests.conftest import shared_file

PEGASUS = FIXTURES / "pegasus"
DIAMOND = PEGASUS / "diamond.yml"
MONTAGE = WFCOMMONS / "montage-chameleon-2mass-025d-001.json"
SMALL = """\
pegasus: "5.0"
name: small
transformationCatalog:
  transformations:
    - name: tool
      sites: [{name: local, pfn: /bin/echo, type: installed}]
jobs:
  - type: job
    name: tool
    id: A
    arguments: [hi]
    uses: [{lfn: a.txt, type: output}]
  - type: job
    name: tool
    id: B
    arguments: [a.txt]
    uses: [{lfn: a.txt, type: input}]
"""


def _issues(text: str, *, strict: bool = False) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_workflow_text(text, source="wf.yml", strict=strict)
    return [str(i) for i in info.value.issues]


def test_diamond_maps_every_job_field() -> None:
    warnings: list[SpecIssue] = []
    spec = load_workflow(DIAMOND, warnings=warnings)
    assert spec.name == "diamond"
    acts = {a.name: a for a in spec.activities}
    assert list(acts) == ["stage_in", "preprocess_ID0000001", "findrange_ID0000002",
                          "findrange_ID0000003", "analyze_ID0000004"]
    assert "_stage f.a /data/inputs/f.a\n" in acts["stage_in"].run  # the local file:// replica
    assert acts["stage_in"].runtime == "local"  # on the submit host, as Pegasus's stage-in jobs
    pre = acts["preprocess_ID0000001"]
    assert pre.run == "/opt/diamond/bin/preprocess -a preprocess -T 60 -i f.a -o f.b1 f.b2\n"
    assert pre.depends_on == ["stage_in"]
    assert (pre.resources.cpu, pre.resources.memory, pre.estimate) == (2.0, 512 * 1024**2, 30.0)
    assert pre.env == {"LANG": "C", "MODE": "fast"}  # workflow profiles, then the transformation's
    f2, f3 = acts["findrange_ID0000002"], acts["findrange_ID0000003"]
    assert f2.image == f3.image == "centos:7"  # the docker container of its site entry
    assert f2.resources.memory == 1024**3  # condor request_memory "1 GB"
    assert f2.depends_on == f3.depends_on == ["preprocess_ID0000001"]  # ID3's edge: from f.b2
    assert f3.env["MODE"] == "slow"  # the job's own profile wins
    ana = acts["analyze_ID0000004"]
    assert ana.run == ("mkdir -p -- results\n/opt/diamond/bin/analyze -a analyze -T 60 -i f.c1 "
                       "f.c2 > results/f.d\n")  # arguments split as Pegasus's launcher does
    assert ana.depends_on == ["findrange_ID0000002", "findrange_ID0000003"]
    assert ana.resources.time_limit == 600.0  # globus maxwalltime, minutes
    assert [(w.path, w.message) for w in warnings] == [
        ("", "profiles akoflow does not use were ignored: pegasus.clusters.size"),
        ("replicaCatalog", "input files whose replicas do not exist on this machine (the "
         "stage_in activity fails unless they exist where it runs), 1: f.a "
         "(file:///data/inputs/f.a)")]
    with pytest.raises(SpecError, match=r"pegasus\.clusters\.size"):
        load_workflow(DIAMOND, strict=True)


def test_imported_yaml_round_trips() -> None:
    spec = import_pegasus(DIAMOND)
    back = parse_workflow_text(dump_yaml(spec), strict=True)
    assert back.model_dump()["activities"] == spec.model_dump()["activities"]


def test_schema_problems_have_file_line_and_path() -> None:
    bad = SMALL.replace("{lfn: a.txt, type: input}", "{lfn: a.txt, type: inptu}")
    assert _issues(bad) == [
        "wf.yml:17: jobs[1].uses[0].type: 'inptu' is not one of ['none', 'input', 'output', "
        "'inout', 'checkpoint'] (Pegasus 5.0 schema)"]
    assert _issues(SMALL.replace("    arguments: [hi]\n", "")) == [
        "wf.yml:8: jobs[0]: 'arguments' is a required property (Pegasus 5.0 schema)"]
    assert _issues(SMALL.replace("name: small", "name: small\njobDependecies: []")) == [
        "wf.yml:1: 'jobDependecies' does not match any of the regexes: '^x-' "
        "(Pegasus 5.0 schema)"]
    # Booleans as Pegasus reads them: `yes` is a string, so the schema refuses it.
    yes = SMALL.replace("type: output}", "type: output, stageOut: yes}")
    assert "'yes' is not of type 'boolean'" in _issues(yes)[0]


def test_cli_validate_and_exit_code(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yml"
    wf.write_text(SMALL.replace("id: B", "id: A"))
    out = subprocess.run([sys.executable, "-m", "akoflow", "validate", str(wf)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr == f"error: {wf}:15: jobs[1].id: duplicate job id 'A'\n"
    wf.write_text(SMALL)
    out = subprocess.run([sys.executable, "-m", "akoflow", "validate", str(wf)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "workflow 'small' is valid: 2 activities, 1 dependencies" in out.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("type: job\n    name: tool\n    id: B", "type: pegasusWorkflow\n    file: sub.yml\n"
          "    id: B"),
         "wf.yml:13: jobs[1]: job 'B' is a Pegasus sub-workflow (pegasusWorkflow, file "
         "'sub.yml'): sub-workflows are not supported; import that workflow on its own"),
        (("type: job\n    name: tool\n    id: B", "type: condorWorkflow\n    file: sub.dag\n"
          "    id: B"), "is a DAGMan sub-workflow (condorWorkflow, file 'sub.dag')"),
        (("name: tool\n    id: B", "name: other\n    id: B"),
         "wf.yml:13: jobs[1]: job 'B': transformation 'other' is not in the transformation "
         "catalog"),
        (("pfn: /bin/echo, type: installed", "pfn: 'http://x/echo', type: stageable"),
         "stageable executable 'http://x/echo' is not a file:// URL or a path"),
        (("{lfn: a.txt, type: input}", "{lfn: ../a.txt, type: input}"),
         "jobs[1]: file '../a.txt' must be a relative path inside the work directory"),
        (("pfn: /bin/echo, type: installed}]",
          "pfn: /bin/echo, type: installed, container: nope}]"),
         "job 'A': container 'nope' is not in the transformation catalog"),
        (("arguments: [hi]", "arguments: [hi]\n    profiles: {pegasus: {memory: lots}}"),
         "job 'A': profile pegasus.memory 'lots' is not a number (MB)"),
    ],
)
def test_unusable_jobs_are_errors(change: tuple[str, str], expected: str) -> None:
    assert change[0] in SMALL
    found = _issues(SMALL.replace(*change))
    assert any(expected in m for m in found), found


def test_dependencies_unknown_ids_and_cycles() -> None:
    deps = SMALL + "jobDependencies:\n  - id: B\n    children: [A, Z]\n"
    assert _issues(deps) == [
        "wf.yml:20: jobDependencies[0].children[1]: unknown job id 'Z'"]
    cycle = SMALL + "jobDependencies:\n  - id: B\n    children: [A]\n"
    assert any("cycle" in m for m in _issues(cycle))


def test_detection_by_content(tmp_path: Path) -> None:
    no_version = SMALL.replace('pegasus: "5.0"\n', "")  # `jobs` alone tells it apart
    assert "'pegasus' is a required property" in _issues(no_version)[0]
    akoflow = "name: wf\nspec:\n  activities: [{name: a, run: x}]\njobs: []\n"
    with pytest.raises(SpecError, match="unknown field 'jobs'"):
        parse_workflow_text(akoflow, strict=True)
    plain = tmp_path / "plain.yaml"
    plain.write_text(akoflow)
    with pytest.raises(SpecError, match="not a Pegasus 5 workflow"):
        import_pegasus(plain)


def test_catalogs_beside_the_workflow(tmp_path: Path) -> None:
    """Pegasus's default transformations.yml / replicas.yml, when nothing is inlined."""
    doc = yaml.safe_load(SMALL)
    tc = {"pegasus": "5.0", **doc.pop("transformationCatalog")}
    doc["jobs"][0]["uses"].append({"lfn": "in.txt", "type": "input"})
    (tmp_path / "wf.yml").write_text(yaml.safe_dump(doc))
    (tmp_path / "transformations.yml").write_text(yaml.safe_dump(tc))
    (tmp_path / "replicas.yml").write_text(yaml.safe_dump({"pegasus": "5.0", "replicas": [
        {"lfn": "in.txt", "pfns": [{"site": "local", "pfn": f"file://{tmp_path}/in.txt"}]}]}))
    (tmp_path / "in.txt").write_text("x")
    spec = load_workflow(tmp_path / "wf.yml")
    assert [a.name for a in spec.activities] == ["stage_in", "tool_A", "tool_B"]
    assert spec.activities[1].run == "/bin/echo hi\n"
    (tmp_path / "replicas.yml").write_text("pegasus: '5.0'\nreplicas: [{lfn: x}]\n")
    with pytest.raises(SpecError, match=r"replicas.yml:2: replicas\[0\]: 'pfns' is a required"):
        load_workflow(tmp_path / "wf.yml")


def test_warnings_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    text = SMALL.replace("uses: [{lfn: a.txt, type: output}]",
                         "uses: [{lfn: a.txt, type: output}, {lfn: given.txt, type: input}]")
    with caplog.at_level(logging.WARNING, logger="akoflow.spec.pegasus"):
        spec = parse_workflow_text(text, source="wf.yml")
    assert [a.name for a in spec.activities] == ["tool_A", "tool_B"]  # nothing to stage
    assert ("replicaCatalog: input files with no replica that no job makes (they must be in "
            "the work directory already), 1: given.txt") in caplog.text


def test_montage_shaped_pegasus_workflow(tmp_path: Path) -> None:
    """A Pegasus file written from the real Montage trace (as Pegasus's API would): the jobs,
    files and edges come back exactly, the raw inputs are staged."""
    trace = json.loads(shared_file(MONTAGE).read_text())["workflow"]["specification"]["tasks"]
    made = {f for t in trace for f in t["outputFiles"]}
    raw = sorted({f for t in trace for f in t["inputFiles"]} - made)
    names = sorted({t["name"].rsplit("_", 1)[0] for t in trace})
    doc = {
        "pegasus": "5.0.4", "name": "montage",
        "replicaCatalog": {"replicas": [
            {"lfn": f, "pfns": [{"site": "local", "pfn": f"file:///data/{f}"}]} for f in raw]},
        "transformationCatalog": {"transformations": [
            {"name": n, "sites": [{"name": "local", "pfn": f"/opt/montage/bin/{n}",
                                   "type": "installed"}]} for n in names]},
        "jobs": [{"type": "job", "name": t["name"].rsplit("_", 1)[0],
                  "id": t["name"].rsplit("_", 1)[1], "arguments": t["inputFiles"][:2],
                  "uses": [{"lfn": f, "type": "input"} for f in t["inputFiles"]]
                  + [{"lfn": f, "type": "output"} for f in t["outputFiles"]]} for t in trace],
        "jobDependencies": [{"id": t["name"].rsplit("_", 1)[1],
                             "children": [c.rsplit("_", 1)[1] for c in t["children"]]}
                            for t in trace if t["children"]],
    }
    (tmp_path / "montage.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    spec = load_workflow(tmp_path / "montage.yml")
    acts = {a.name: a for a in spec.activities}
    assert len(acts) == len(trace) + 1
    readers_of_raw = {t["name"] for t in trace if set(t["inputFiles"]) & set(raw)}
    for t in trace:
        expected = set(t["parents"]) | ({"stage_in"} if t["name"] in readers_of_raw else set())
        assert set(acts[t["name"]].depends_on) == expected, t["name"]
    assert acts["stage_in"].run.count("\n_stage ") == len(raw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("? [a, b]\n: x\njobs: []\n", "wf.yml:1: YAML error: found unhashable key"),
        ("pegasus: '5.0'\nname: !!python/object x\njobs: []\n",
         "wf.yml:2: YAML error: could not determine a constructor for the tag "
         "'tag:yaml.org,2002:python/object'"),
        ("pegasus: '5.0'\nname: x\njobs: &a [*a]\n",
         "wf.yml:3: jobs[0]: matches none of the forms the schema allows here "
         "(Pegasus 5.0 schema)"),
    ],
)
def test_hostile_yaml_is_one_error(text: str, expected: str) -> None:
    assert _issues(text) == [expected]


def test_alias_bomb_is_refused_before_expansion() -> None:
    lines = ["pegasus: '5.0'", "name: x", "x-a0: &a0 [1, 1]"]
    lines += [f"x-a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    found = _issues("\n".join(lines) + "\njobs: []\n")
    assert found == ["wf.yml: the document expands to more than 5,000,000 values (YAML aliases)"]
