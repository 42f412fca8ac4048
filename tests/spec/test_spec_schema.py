"""`akoflow schema`: the JSON Schema editors check workflow files with, against the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from spec_helpers import FIXTURES, REPO

from akoflow.spec import SpecError, SpecIssue, parse_workflow_text
from akoflow.spec import _fields as F
from akoflow.spec.schema import DESCRIPTIONS

# Files whose unknown keys the loader warns about and the schema flags (it is as strict as
# `validate --strict`); everything else in examples/ and the fixtures must pass both.
STRICTER = {"extra-keys.yaml", "typo-depends-on.yaml"}
WARNS = {"empty-run.yaml"}
AKOFLOW_FILES = sorted(REPO.glob("examples/*.yaml")) + sorted(
    p for p in FIXTURES.rglob("*.yaml") if "pegasus" not in p.parts)


class _EditorLoader(yaml.SafeLoader):
    """YAML as editors read it for the schema (1.2-like): timestamps stay strings."""


_EditorLoader.add_constructor("tag:yaml.org,2002:timestamp",
                              yaml.SafeLoader.construct_yaml_str)


@pytest.fixture(scope="module")
def validator() -> Any:
    out = subprocess.run([sys.executable, "-m", "akoflow", "schema"], capture_output=True,
                         text=True, timeout=60, check=True)
    schema = json.loads(out.stdout)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator: Any, text: str) -> list[str]:
    doc = yaml.load(text, Loader=_EditorLoader)  # a SafeLoader subclass
    return [".".join(map(str, e.absolute_path)) + ": " + e.message
            for e in validator.iter_errors(doc)]


def _loads(text: str, strict: bool = True) -> bool:
    try:
        parse_workflow_text(text, strict=strict)
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("path", AKOFLOW_FILES, ids=lambda p: p.name)
def test_examples_and_fixtures_pass_the_schema(validator: Any, path: Path) -> None:
    errors = _errors(validator, path.read_text())
    if path.name in STRICTER:
        assert errors and not _loads(path.read_text())
    else:
        assert errors == []
        # an empty `run` is a warning, which --strict makes an error
        assert _loads(path.read_text(), strict=path.name not in WARNS)


def test_every_key_the_loader_reads_is_described(validator: Any) -> None:
    defs = validator.schema["$defs"]
    act = defs["activity"]["properties"]
    spec = defs["spec"]["properties"]
    assert set(act) == F.ACT_KNOWN | F.ACT_IGNORED
    assert set(spec) == set(F.SPEC_FIELDS) | F.FLAT_POLICY | F.SPEC_IGNORED | {
        "activities", "storagePolicy"}
    assert set(defs["storagePolicy"]["properties"]) == set(F.POLICY_FIELDS)
    for scope in (act, spec, defs["storagePolicy"]["properties"], validator.schema["properties"]):
        assert all(p.get("description") for p in scope.values())
    assert set(DESCRIPTIONS["activity"]) == F.ACT_KNOWN
    assert act["retries"]["default"] == 0 and spec["namespace"]["default"] == "akoflow"


@pytest.mark.parametrize(
    ("where", "key"),
    [("top", "nmae"), ("spec", "activites"), ("spec", "storagePolcy"), ("act", "depends_on"),
     ("act", "memorylimit"), ("act", "cpu"), ("policy", "tpye"), ("hook", "ulr")],
)
def test_typos_are_flagged_by_the_schema_too(validator: Any, where: str, key: str) -> None:
    act = "name: wf\nspec:\n  activities:\n    - name: a\n      run: echo a\n"
    texts = {
        "top": f"{key}: x\n" + act,
        "spec": act.replace("spec:\n", f"spec:\n  {key}: x\n"),
        "act": act + f"      {key}: x\n",
        "policy": act.replace("spec:\n", f"spec:\n  storagePolicy: {{{key}: x}}\n"),
        "hook": act.replace("spec:\n", "spec:\n  webhooks: [{name: h, url: 'http://h', "
                                       f"{key}: x}}]\n"),
    }
    assert any(repr(key) in e for e in _errors(validator, texts[where]))
    with pytest.raises(SpecError, match="did you mean"):  # lenient, and still an error
        parse_workflow_text(texts[where])


def test_x_keys_pass_both(validator: Any) -> None:
    text = ("name: wf\nx-team: a\nspec:\n  x-note: b\n  activities:\n"
            "    - {name: a, run: x, x-tag: c}\n")
    assert _errors(validator, text) == []
    warnings: list[SpecIssue] = []
    parse_workflow_text(text, strict=True, warnings=warnings)
    assert warnings == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("cpuLimit", v) for v in ("1", "0.5", "500m", "2", "1.5m", "-1", "0", "1 core", "1e3")]
    + [("memoryLimit", v) for v in ("512Mi", "4Gi", "1G", "1024", "1.5Gi", "10XB", "Gi", "-1")]
    + [("timeLimit", v) for v in ("90", "90s", "30m", "2h", "01:30:00", "1-12:00:00", "5:00",
                                  "1-2", "soon", "1:2:3:4", "-5")]
    + [("retries", v) for v in ("0", "3", "1000", "1001", "-1", "two")]
    + [("alpha", v) for v in ("0", "0.5", "1", "1.5", "x")]
    + [("nodeSelector", v) for v in ('"a=b"', '"a=b,c=d"', '""', '"ab"', "{a: b}")]
    + [("keepDisk", v) for v in ("true", "false", "maybe")],
)
def test_schema_and_loader_agree_on_values(validator: Any, key: str, value: str) -> None:
    text = f"name: wf\nspec:\n  activities:\n    - name: a\n      run: x\n      {key}: {value}\n"
    by_schema = _errors(validator, text) == []
    assert by_schema == _loads(text), (key, value, _errors(validator, text))
