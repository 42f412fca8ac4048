from __future__ import annotations

import pytest
import yaml
from spec_helpers import FIXTURES

from akoflow.spec import ActivitySpec, Resources, WorkflowSpec, dump_yaml, load_workflow
from akoflow.spec import parse_workflow_text as parse
from akoflow.spec.dump import format_memory


@pytest.mark.parametrize("fixture", ["p-inference-nemo.yaml", "akoflow-exported.yaml", "full.yaml"])
def test_round_trip_fixtures(fixture: str) -> None:
    spec = load_workflow(FIXTURES / fixture)
    text = dump_yaml(spec)
    back = parse(text, strict=True)
    assert back.model_dump() == spec.model_dump()
    assert back.raw == text


def test_only_non_default_fields_and_akoflow_style() -> None:
    spec = WorkflowSpec(
        name="wf",
        activities=[
            ActivitySpec(
                name="a", run="echo a\necho b\n", resources=Resources(cpu=0.5, memory=512 * 1024**2)
            ),
            ActivitySpec(
                name="b",
                run="echo b",
                depends_on=["a"],
                resources=Resources(memory=1000, extra={"partition": "short"}),
                env={"N": "3"},
            ),
        ],
    )
    text = dump_yaml(spec)
    doc = yaml.safe_load(text)
    assert doc == {
        "name": "wf",
        "spec": {
            "runtime": "local",
            "activities": [
                {"name": "a", "cpuLimit": 0.5, "memoryLimit": "512Mi", "run": "echo a\necho b\n"},
                {
                    "name": "b",
                    "memoryLimit": 1000,
                    "resources": {"partition": "short"},
                    "dependsOn": ["a"],
                    "env": {"N": "3"},
                    "run": "echo b",
                },
            ],
        },
    }
    assert "run: |\n      echo a\n      echo b\n" in text  # literal block, as people write it
    assert parse(text).model_dump() == spec.model_dump()


def test_awkward_strings_survive() -> None:
    runs = ["echo 'x: y' # not a comment", "  leading space\n", "tab\there\n", "null", "123", "é ü"]
    spec = WorkflowSpec(
        name="wf", activities=[ActivitySpec(name=f"a{i}", run=r) for i, r in enumerate(runs)]
    )
    assert [a.run for a in parse(dump_yaml(spec)).activities] == runs


def test_format_memory() -> None:
    assert format_memory(4 * 1024**3) == "4Gi"
    assert format_memory(1536 * 1024**2) == "1536Mi"
    assert format_memory(3 * 1024) == "3Ki"
    assert format_memory(1000) == 1000
    assert format_memory(0) == 0
