"""The checked spec dataclasses: what a spec built in Python (not from YAML) is held to."""

from __future__ import annotations

import json

import pytest

from akoflow.spec.checked import ValidationError
from akoflow.spec.models import ActivitySpec, Resources, WorkflowSpec


def test_values_are_converted_and_nested_mappings_become_models() -> None:
    act = ActivitySpec(name="a", run="true", retries="2", resources={"cpu": "0.5", "timeLimit": 60})
    assert act.retries == 2
    assert act.resources == Resources(cpu=0.5, time_limit=60.0)


def test_every_problem_is_reported_with_its_field_path() -> None:
    with pytest.raises(ValidationError) as info:
        WorkflowSpec(name="wf", alpha=2, activities=[
            ActivitySpec(name="ok", run="true"),
            {"name": "", "run": 3, "retries": -1},
        ])
    found = {(".".join(map(str, e["loc"])), e["msg"]) for e in info.value.errors()}
    assert ("alpha", "alpha must be between 0 and 1") in found
    paths = {p for p, _ in found}
    assert {"activities.1.name", "activities.1.run", "activities.1.retries"} <= paths


def test_a_workflow_needs_an_activity_and_a_name() -> None:
    with pytest.raises(ValidationError, match="activities: must have at least 1"):
        WorkflowSpec(name="wf", activities=[])
    with pytest.raises(ValidationError, match="name is empty"):
        WorkflowSpec(name=" ", activities=[ActivitySpec(name="a", run="x")])
    with pytest.raises(ValidationError, match="longer than 1000"):
        WorkflowSpec(name="w", activities=[ActivitySpec(name="a" * 1001, run="x")])
    # any other text is a name (AkôFlow takes any string); paths use names.ident
    assert WorkflowSpec(name="a;rm -rf /", activities=[ActivitySpec(name="../x", run="x")])
    with pytest.raises(ValidationError, match="may only contain"):  # sites stay strict
        WorkflowSpec(name="w", runtime="a;b", activities=[ActivitySpec(name="a", run="x")])
    with pytest.raises(ValidationError, match="newline"):
        Resources(extra={"partition": "short\n#SBATCH --x"})


def test_dump_uses_yaml_spelling_and_leaves_out_bookkeeping() -> None:
    spec = WorkflowSpec(name="wf", raw="name: wf", activities=[
        ActivitySpec(name="a", run="true", line=3),
        ActivitySpec(name="b", run="true", depends_on=["a"], resources=Resources(memory=1024)),
    ])
    doc = json.loads(spec.model_dump_json(by_alias=True))
    assert "raw" not in doc and "line" not in doc["activities"][0]
    assert doc["activities"][1]["dependsOn"] == ["a"]
    assert doc["storagePolicy"]["storageClassName"] is None
    assert doc["activities"][1]["resources"]["timeLimit"] is None
    assert spec.model_dump()["activities"][1]["depends_on"] == ["a"]


def test_python_values_are_taken_as_a_user_would_expect() -> None:
    """Specs built in Python get the values they meant: numbers of any numeric type,
    iterables of names, text-like strings become plain str."""
    import enum
    from fractions import Fraction

    class Step(str, enum.Enum):
        A = "a"

    act = ActivitySpec(name=Step.A, run="true", depends_on={"x"}, cache="true",
                       resources={"cpu": Fraction(1, 2), "gpus": 2.0})
    assert type(act.name) is str and act.name == "a"
    assert act.depends_on == ["x"] and act.cache is True
    assert act.resources.cpu == 0.5 and act.resources.gpus == 2


def test_absurd_numbers_are_field_errors_not_crashes() -> None:
    for bad in ({"alpha": 10**400}, {"estimate": 10**400}, {"retries": 10**400},
                {"retries": 1001}, {"retry_memory_factor": float("inf")}):
        with pytest.raises(ValidationError):
            ActivitySpec(name="a", run="true", **bad)
