from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from spec_helpers import FIXTURES, issues_of

from akoflow.spec import SpecError, SpecIssue, load_workflow, parse_workflow_text
from tests.conftest import ROOT, shared_file

GOOD = """\
name: wf
spec:
  activities:
    - name: a
      run: echo a
"""


def test_seed_001_example_validates_unchanged() -> None:
    path = FIXTURES / "p-inference-nemo.yaml"
    spec = load_workflow(path, strict=True)
    assert spec.name == "p-inference-nemo"
    assert spec.runtime == "sdumont"
    assert spec.image == "/scratch/.../.../p-inference-nemo/sifs/p-inference-nemo.sif"
    assert spec.storage_policy.type == "default"
    assert [(w.name, w.url) for w in spec.webhooks] == [
        ("inference-examples", "https://myhost.com/mypath/mywebhook")
    ]
    assert [(v.host, v.container) for v in spec.volumes] == [
        ("/data-akoflow/sifs", "/scratch/.../.../p-inference-nemo/sifs"),
        (
            "/data-akoflow/akf-wine-singularity",
            "/scratch/.../.../p-inference-nemo/akf-wine-sdumont",
        ),
    ]
    assert spec.mount_path == "/scratch/.../.../p-inference-nemo/akf-wine-sdumont"
    (act,) = spec.activities
    assert act.name == "inference-examples"
    assert act.run.splitlines() == [
        'echo "Running inference-examples"',
        "conda run -n tutorial mlflow run .  --env-manager=local",
    ]
    assert act.resources.cpu == 1.0
    assert act.line == 19
    assert spec.raw == path.read_text()
    assert spec.source == str(path)


def test_seed_file_itself_when_available() -> None:
    seed = shared_file(ROOT.parent / "shared" / "seeds" / "001_bb9b1dcf32b6a4df.txt")
    text = seed.read_text()
    block = text[text.index("name: p-inference-nemo") : text.index("YAML Specification Details:")]
    assert parse_workflow_text(block).activities[0].name == "inference-examples"


def test_exported_akoflow_workflow_validates_strict() -> None:
    spec = load_workflow(FIXTURES / "akoflow-exported.yaml", strict=True)
    a, b = spec.activities
    assert a.resources.node_selector == {"kubernetes.io/hostname": "docker-desktop"}
    assert a.resources.memory == 500 * 1024**2 and a.resources.cpu == 0.5
    assert b.resources.cpu == 0.5 and b.depends_on == ["a"]
    assert spec.storage_policy.storage_class_name == "hostpath"
    assert spec.storage_policy.storage_size == 32 * 1024**2
    assert spec.storage_policy.access_modes == ["ReadWriteOnce"]
    assert spec.namespace == "scik8sflow"


def test_every_field_is_read() -> None:
    spec = load_workflow(FIXTURES / "full.yaml", strict=True)
    top = (spec.runtime, spec.schedule, spec.namespace, spec.alpha)
    assert top == ("slurm", "akoscore", "lab", 0.25)
    vols = [(v.host, v.container) for v in spec.volumes]
    assert vols == [("/data", "/mnt/data"), ("/scratch", "/scratch")]
    pol = spec.storage_policy
    assert (pol.type, pol.storage_class_name) == ("distributed", "nfs")
    assert pol.storage_size == 10 * 1024**3
    assert (pol.access_modes, pol.nfs_server) == (["ReadWriteMany"], "nfs.example.org")
    assert spec.webhooks[0].secret == "s3cret"
    prep, ana = spec.activities
    r = prep.resources
    assert (r.cpu, r.memory, r.time_limit, r.gpus) == (2.0, 4 * 1024**3, 5400.0, 1)
    assert r.extra == {"partition": "gpu", "slurm.constraint": "a100"}
    assert r.node_selector == {"kubernetes.io/arch": "amd64"}
    assert prep.env == {"OMP_NUM_THREADS": "4", "MODE": "fast"}
    assert (prep.retries, prep.retry_memory_factor, prep.cache, prep.keep_disk, prep.alpha) == (
        2,
        1.5,
        True,
        True,
        0.9,
    )
    assert ana.depends_on == ["prepare"]  # a single string is accepted
    assert (ana.image, ana.runtime, ana.mount_path) == ("python:3.12", "local", "/work")


def test_merge_keys_apply_defaults() -> None:
    text = """\
name: wf
defaults: &small {cpuLimit: 2, memoryLimit: 1Gi}
spec:
  activities:
    - <<: *small
      name: a
      run: echo a
    - <<: *small
      name: b
      memoryLimit: 2Gi
      run: echo b
"""
    spec = parse_workflow_text(text)
    assert [(a.resources.cpu, a.resources.memory) for a in spec.activities] == [
        (2.0, 1024**3),
        (2.0, 2 * 1024**3),
    ]


# --- errors: one line each, with file, line and field path -------------------------------------


def test_bad_memory_unit_line_and_path() -> None:
    text = GOOD + "      memoryLimit: 12XB\n"
    assert issues_of(text) == [
        "wf.yaml:6: spec.activities[0].memoryLimit: memory '12XB' is not a size "
        "(use bytes or a suffix: Ki, Mi, Gi, Ti, K, M, G, T)"
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("cpuLimit: lots", "cpuLimit: cpu 'lots' is not a number"),
        ("cpuLimit: [1]", "cpuLimit: must be a single value, not a list"),
        ("timeLimit: soon", "timeLimit: time 'soon' is not a duration"),
        ("keepDisk: maybe", "keepDisk: must be true or false, not 'maybe'"),
        ("retries: -1", "retries: -1 must be between 0 and 1000"),
        ("retries: 1001", "retries: 1001 must be between 0 and 1000"),
        ("gpus: " + "9" * 400, "gpus: " + "9" * 400 + " must be between 0 and 1024"),
        ("memoryLimit: 2000000Ti", "memoryLimit: memory '2000000Ti' is larger than 1 EiB"),
        ("memoryLimit: 1" + "0" * 400, "memoryLimit: memory 1" + "0" * 400 + " is larger"),
        ("timeLimit: 36500d", "timeLimit: time '36500d' is longer than a century"),
        ("timeLimit: '" + "1" * 400 + "s'", "timeLimit: time '" + "1" * 400 + "s' is longer"),
        ("estimate: '" + "1" * 400 + ":00'", "estimate: time '" + "1" * 400 + ":00' is longer"),
        ("gpus: 1.5", "gpus: must be a whole number, not '1.5'"),
        ("alpha: 2", "alpha: 2 must be between 0 and 1"),
        ("env: [A]", "env: must be a mapping, not a list"),
        ("env: {1X: y}", "env.1X: key '1X' is not a valid name"),
        ("dependsOn: {a: 1}", "dependsOn: must be a list of strings"),
        ("nodeSelector: nokey", "nodeSelector: node selector 'nokey'"),
        ("resources: {cpu: 2}", "resources.cpu: use the activity field 'cpuLimit'"),
        ('resources: {qos: "a\\nb"}', "resources.qos: must not contain control"),
        ("image: {a: 1}", "image: must be a string, not a mapping"),
        ("memoryLimit: 0", "memoryLimit: 0 must be greater than zero"),
    ],
)
def test_field_errors(extra: str, expected: str) -> None:
    found = issues_of(f"{GOOD}      {extra}\n")
    assert len(found) == 1, found
    assert found[0].startswith(f"wf.yaml:6: spec.activities[0].{expected}")


def test_yaml_syntax_error_has_line() -> None:
    text = "name: wf\nspec:\n  activities:\n    - name: a\n      run: [unclosed\n    - name: b\n"
    (msg,) = issues_of(text)
    assert msg.startswith("wf.yaml:6: YAML syntax error:")


def test_syntax_error_bad_indent() -> None:
    (msg,) = issues_of("name: wf\nspec:\n  a: 1\n b: 2\n")
    assert msg.startswith("wf.yaml:4: YAML syntax error")


ACTS = "name: wf\nspec:\n  activities:\n"
ONE = "  activities:\n    - {name: a, run: x}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "wf.yaml:1: the document must be a mapping with name and spec, not a list"),
        ("just text\n", "wf.yaml:1: the document must be a mapping"),
        ("", "wf.yaml: file is empty"),
        ("# only a comment\n", "wf.yaml: file is empty"),
        ("spec:\n" + ONE, "wf.yaml:1: name: is required"),
        ("name: wf\n", "wf.yaml:1: spec: is required"),
        ("name: wf\nspec:\n  image: x\n", "wf.yaml:2: spec.activities: is required"),
        (
            "name: wf\nspec:\n  activities: []\n",
            "wf.yaml:3: spec.activities: is empty: a workflow needs at least one activity",
        ),
        ("name: wf\nspec: [1]\n", "wf.yaml:2: spec: must be a mapping, not a list"),
        (ACTS + "    - name: a\n", "wf.yaml:4: spec.activities[0].run: is required"),
        (ACTS + "    - run: x\n", "wf.yaml:4: spec.activities[0].name: is required"),
        (ACTS + "    - x\n", "wf.yaml:4: spec.activities[0]: must be a mapping, not 'x'"),
        ("name: [wf]\nspec:\n" + ONE, "wf.yaml:1: name: must be a string, not a list"),
        ("name: wf\nname: wf2\nspec:\n" + ONE, "wf.yaml:2: name: duplicate key 'name'"),
    ],
)
def test_structure_errors(text: str, expected: str) -> None:
    found = issues_of(text)
    assert any(m.startswith(expected) for m in found), found


def test_graph_errors() -> None:
    text = """\
name: wf
spec:
  activities:
    - name: prepare
      run: x
    - name: a
      run: x
      dependsOn: [c]
    - name: b
      run: x
      dependsOn: [a, prepair]
    - name: c
      run: x
      dependsOn: [b]
    - name: a
      run: x
    - name: s
      run: x
      dependsOn: [s]
"""
    assert issues_of(text) == [
        "wf.yaml:6: spec.activities[1]: cycle: a -> c -> b -> a "
        "(each activity depends on the next)",
        "wf.yaml:11: spec.activities[2].dependsOn[1]: unknown activity 'prepair' in dependsOn; "
        "did you mean 'prepare'?",
        "wf.yaml:15: spec.activities[4].name: duplicate activity name 'a'",
        "wf.yaml:19: spec.activities[5].dependsOn[0]: activity 's' depends on itself",
    ]


@pytest.mark.parametrize("name", ["../x", "a;rm -rf /", "x" * 101, ".hidden", "Echo Hello"])
def test_names_are_any_text(name: str) -> None:
    """As in AkôFlow: paths, job names and shell lines get `names.ident(name)` instead."""
    text = f"name: '{name}'\nspec:\n  activities:\n    - name: '{name}'\n      run: x\n"
    spec = parse_workflow_text(text, source="wf.yaml")
    assert spec.name == name and spec.activities[0].name == name


@pytest.mark.parametrize(("name", "reason"), [("x" * 1001, "longer than 1000 characters"),
                                              (" ", "is empty")])
def test_bad_names_rejected(name: str, reason: str) -> None:
    text = f"name: wf\nspec:\n  activities:\n    - name: '{name}'\n      run: x\n"
    (msg,) = issues_of(text)
    assert msg.startswith("wf.yaml:4: spec.activities[0].name: activity name")
    assert reason in msg
    (msg,) = issues_of(f"name: '{name}'\nspec:\n  activities:\n    - name: a\n      run: x\n")
    assert msg.startswith("wf.yaml:1: name: workflow name") and reason in msg


def test_all_issues_collected() -> None:
    text = GOOD + "      memoryLimit: 1XB\n    - name: b\n      cpuLimit: -1\n      run: x\n"
    found = issues_of(text)
    assert [m.split(":")[1] for m in found] == ["6", "8"]


def test_unknown_keys_strict_vs_lenient(caplog: pytest.LogCaptureFixture) -> None:
    text = GOOD + "      memoryLimits: 1Gi\n"
    (msg,) = issues_of(text, strict=True)
    assert msg == (
        "wf.yaml:6: spec.activities[0].memoryLimits: unknown field 'memoryLimits' "
        "(did you mean 'memoryLimit'?)"
    )
    text = GOOD + "      memoryLimitPerNode: 1Gi\n"  # 7 edits away: an extra key, not a typo
    (msg,) = issues_of(text, strict=True)
    assert msg == (
        "wf.yaml:6: spec.activities[0].memoryLimitPerNode: unknown field 'memoryLimitPerNode' "
        "(did you mean 'memoryLimit'?)"
    )
    warnings: list[SpecIssue] = []
    with caplog.at_level(logging.WARNING, logger="akoflow.spec.loader"):
        spec = parse_workflow_text(text, source="wf.yaml", warnings=warnings)
    assert spec.activities[0].resources.memory is None
    assert [str(w) for w in warnings] == [msg]
    assert msg in caplog.text


def test_large_file_rejected_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    line = "# " + "x" * 1000 + "\n"
    big.write_text(GOOD + line * 10_600, encoding="utf-8")
    assert big.stat().st_size > 10 * 1024 * 1024
    with pytest.raises(SpecError) as info:
        load_workflow(big)
    assert str(info.value) == f"{big}: file is larger than 5 MB"
    with pytest.raises(SpecError, match="file is larger than 5 MB"):
        parse_workflow_text(big.read_text())


def test_binary_and_non_utf8_rejected(tmp_path: Path) -> None:
    binary = tmp_path / "wf.yaml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))
    with pytest.raises(SpecError) as info:
        load_workflow(binary)
    assert str(info.value) == f"{binary}: not a text file (binary content)"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: wf\nspec:\n  image: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_workflow(latin)
    assert str(info.value) == f"{latin}:3: not a text file (not valid UTF-8)"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read file"):
        load_workflow(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="not a regular file"):
        load_workflow(tmp_path)


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_an_error_not_a_crash(style: str) -> None:
    # 100k levels segfaults libyaml's recursive composer; the loader must refuse it first.
    n = 100_000
    bomb = "[" * n + "]" * n if style == "flow" else "- " * n + "x"
    code = (
        "import sys\nfrom akoflow.spec import parse_workflow_text, SpecError\n"
        "try:\n    parse_workflow_text(sys.stdin.read(), source='wf.yaml')\n"
        "except SpecError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=bomb, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # PyYAML 6.0.3+ refuses deep flow nesting itself, before the loader's own count.
    assert out.stdout.strip() in (
        "wf.yaml:1: YAML nesting is deeper than 200",
        "wf.yaml:1: YAML syntax error: exceeded maximum nesting depth "
        "(while increasing flow level)",
    )


def test_alias_bomb_is_cheap() -> None:
    lines = ["a0: &a0 {x: 1}"]
    lines += [f"a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}]}}" for i in range(1, 60)]
    text = "\n".join(lines) + "\n" + ACTS + "    - {<<: *a59, name: a, run: x}\n"
    found = issues_of(text, strict=True)
    assert any("unknown field 'x'" in m for m in found)


def test_spec_issue_format() -> None:
    assert str(SpecIssue("f.yaml", 3, "spec.x", "bad")) == "f.yaml:3: spec.x: bad"
    assert str(SpecIssue(None, 3, "spec.x", "bad")) == "line 3: spec.x: bad"
    assert str(SpecIssue("f.yaml", None, "", "bad")) == "f.yaml: bad"
    err = SpecError([SpecIssue("f", 1, "p", "m1"), SpecIssue("f", 2, "q", "m2")])
    assert str(err) == "f:1: p: m1\nf:2: q: m2"


def test_go_marshalled_export_with_empty_fields() -> None:
    # What AkôFlow's engine writes back with yaml.Marshal: every field present, unset ones empty.
    text = """\
name: wf
spec:
  runtime: ""
  schedule: ""
  image: ""
  storagePolicy:
    type: ""
    storageClassName: ""
    storageSize: ""
  volumes: []
  mountPath: ""
  activities:
  - id: 0
    workflowid: 0
    status: 0
    procId: ""
    name: a
    run: echo a
    image: ""
    memoryLimit: ""
    cpuLimit: ""
    dependsOn: []
    nodeSelector: ""
    keepDisk: false
    createdAt: ""
    startedAt: ""
    finishedAt: ""
  namespace: ""
id: 3
status: 1
"""
    spec = parse_workflow_text(text, strict=True)
    assert (spec.runtime, spec.namespace) == ("local", "akoflow")
    assert spec.storage_policy.type == "default"
    r = spec.activities[0].resources
    assert (r.cpu, r.memory, r.node_selector) == (1.0, None, {})
