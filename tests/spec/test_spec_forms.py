"""AkôFlow's remaining spellings (storageAkoflowPolicy, an empty run) and typo'd keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from spec_helpers import FIXTURES, issues_of

from akoflow.spec import SpecIssue, load_workflow, parse_workflow_text
from akoflow.spec.typos import edit_distance, near_miss
from tests.conftest import work_dir

FORMS = FIXTURES / "forms"
ACT = "name: wf\nspec:\n  activities:\n    - name: a\n      run: echo a\n"


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "akoflow", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_storage_akoflow_policy_mapping() -> None:
    spec = load_workflow(FORMS / "storage-akoflow-policy-mapping.yaml", strict=True)
    pol = spec.storage_policy
    assert pol.type == "distributed"
    assert pol.storage_class_name == "standard-rwo"
    assert pol.storage_size == 2 * 1024**3  # the flat key is set directly: it wins
    assert pol.akoflow_policy is None


def test_storage_akoflow_policy_string() -> None:
    spec = load_workflow(FORMS / "storage-akoflow-policy-string.yaml", strict=True)
    assert spec.storage_policy.type == "standalone"
    other = ACT.replace("spec:\n", "spec:\n  storageAkoflowPolicy: nfs-rwx\n")
    spec = parse_workflow_text(other, strict=True)
    assert (spec.storage_policy.type, spec.storage_policy.akoflow_policy) == ("default", "nfs-rwx")


def test_storage_policy_nested_wins_and_inner_keys_are_checked() -> None:
    text = ACT.replace("spec:\n", "spec:\n  storageAkoflowPolicy: {type: standalone}\n"
                       "  storagePolicy: {type: distributed}\n")
    assert parse_workflow_text(text).storage_policy.type == "distributed"
    bad = ACT.replace("spec:\n", "spec:\n  storageAkoflowPolicy: {type: everywhere, tpye: x}\n")
    assert issues_of(bad) == [
        "wf.yaml:3: spec.storageAkoflowPolicy.tpye: unknown field 'tpye' (did you mean 'type'?)",
        "wf.yaml:3: spec.storageAkoflowPolicy.type: storage type 'everywhere' must be default, "
        "distributed or standalone",
    ]
    listed = ACT.replace("spec:\n", "spec:\n  storageAkoflowPolicy: [distributed]\n")
    assert issues_of(listed) == ["wf.yaml:3: spec.storageAkoflowPolicy: must be a string, "
                                 "not a list"]


def test_empty_run_is_a_warning_and_runs_nothing() -> None:
    warnings: list[SpecIssue] = []
    spec = load_workflow(FORMS / "empty-run.yaml", warnings=warnings)
    assert spec.activities[0].run == ""
    assert [str(w) for w in warnings] == [
        f"{FORMS / 'empty-run.yaml'}:6: spec.activities[0].run: is empty: the activity does "
        "nothing"
    ]
    with pytest.raises(Exception, match="is empty"):
        load_workflow(FORMS / "empty-run.yaml", strict=True)
    for empty in ("run:", "run: ''", "run: '   '"):
        spec = parse_workflow_text(ACT.replace("run: echo a", empty))
        assert spec.activities[0].run == ""
    missing = ACT.replace("      run: echo a\n", "      image: x\n")
    assert issues_of(missing) == ["wf.yaml:4: spec.activities[0].run: is required "
                                  "(the command to run)"]


def test_empty_run_activity_finishes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = subprocess.run(
        [sys.executable, "-m", "akoflow", "run", str(FORMS / "empty-run.yaml"), "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "AKOFLOW_HOME": str(home)},
    )
    assert out.returncode == 0, out.stderr
    assert "is empty: the activity does nothing" in out.stderr
    assert (work_dir(home, 1) / "after.txt").read_text() == "after\n"


def test_typo_is_an_error_with_file_line_path_and_exit_2() -> None:
    out = _cli("validate", FORMS / "typo-depends-on.yaml")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: {FORMS / 'typo-depends-on.yaml'}:7: spec.activities[1].depends_on: "
        "unknown field 'depends_on' (did you mean 'dependsOn'?)"
    )


@pytest.mark.parametrize(
    ("where", "key", "meant"),
    [
        ("top", "nmae", "name"),
        ("spec", "mountpath", "mountPath"),
        ("spec", "storagePolcy", "storagePolicy"),
        ("spec", "activites", "activities"),
        ("spec", "storageClasName", "storageClassName"),
        ("policy", "storageSise", "storageSize"),
        ("act", "depends_on", "dependsOn"),
        ("act", "dependson", "dependsOn"),
        ("act", "memory_limit", "memoryLimit"),
        ("act", "cpu", "cpuLimit"),
        ("act", "imgae", "image"),
        ("act", "retrys", "retries"),
        ("act", "keep_disk", "keepDisk"),
        ("act", "Run", "run"),
        ("hook", "ulr", "url"),
    ],
)
def test_typos_at_every_level(where: str, key: str, meant: str) -> None:
    texts = {
        "top": f"{key}: x\n" + ACT,
        "spec": ACT.replace("spec:\n", f"spec:\n  {key}: x\n"),
        "policy": ACT.replace("spec:\n", f"spec:\n  storagePolicy: {{{key}: 1Gi}}\n"),
        "act": ACT + f"      {key}: x\n",
        "hook": ACT.replace("spec:\n", f"spec:\n  webhooks: [{{name: h, url: http://h, "
                                       f"{key}: x}}]\n"),
    }
    found = issues_of(texts[where])
    assert any(f"unknown field {key!r} (did you mean {meant!r}?)" in m for m in found), found


def test_extra_keys_stay_warnings() -> None:
    warnings: list[SpecIssue] = []
    spec = load_workflow(FORMS / "extra-keys.yaml", warnings=warnings)
    assert spec.name == "extra-keys"
    assert [w.path for w in warnings] == [
        "spec.runtimeSettings", "spec.activities[0].nodeName", "spec.activities[0].note"]


def test_akoflow_read_only_fields_are_known() -> None:
    # The fields AkôFlow's engine and API write back (Go yaml.v3 and its API types).
    text = """\
name: wf
id: 3
status: 2
spec:
  createdAt: "2025-01-01"
  startExecution: "2025-01-01"
  endExecution: ""
  executionTime: "10s"
  diskUsage: "1Mi"
  longestActivity: {name: a}
  activities:
    - {id: 1, workflowid: 3, workflowId: 3, status: 2, procId: "9", createdAt: "",
       startedAt: "", finishedAt: "", executionTime: "", name: a, run: echo}
"""
    assert parse_workflow_text(text, strict=True).activities[0].name == "a"


def test_edit_distance() -> None:
    assert edit_distance("depends_on", "dependsOn") == 1
    assert edit_distance("imgae", "image") == 1  # a swap is one edit
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert near_miss("note", {"name"}) is None  # short keys allow one edit only
    assert near_miss("nmae", {"name"}) == "name"
    assert near_miss("runtimeSettings", {"runtime"}) is None
