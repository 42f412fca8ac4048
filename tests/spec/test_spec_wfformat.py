from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from spec_helpers import WFCOMMONS

from akoflow.spec import SpecError, dump_yaml, import_wfformat, parse_workflow_text
from akoflow.spec.wfformat import TRACE_RUNTIME_ENV, sanitize_name, trace_io
from tests.conftest import shared_file

# Without ../shared one placeholder stands in, so the test reports it (skips; fails in CI).
TRACES = sorted(WFCOMMONS.glob("*.json")) or [WFCOMMONS / "no-traces.json"]


@pytest.fixture
def needs_traces() -> None:
    shared_file(WFCOMMONS / "rnaseq-dirt02-001.json")


@pytest.mark.usefixtures("needs_traces")
@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_every_trace_imports_faithfully(trace: Path) -> None:
    shared_file(trace)
    doc = json.loads(trace.read_text())
    tasks = doc["workflow"]["specification"]["tasks"]
    runs = {t["id"]: t for t in doc["workflow"]["execution"]["tasks"]}
    spec = import_wfformat(trace)
    io = trace_io(trace)
    assert len(spec.activities) == len(tasks)
    names = {t["id"]: sanitize_name(t["id"]) for t in tasks}
    for task, act in zip(tasks, spec.activities, strict=True):
        assert act.name == names[task["id"]]
        assert act.depends_on == [names[p] for p in task["parents"]]
        ex = runs[task["id"]]
        assert act.env[TRACE_RUNTIME_ENV] == repr(float(ex["runtimeInSeconds"]))
        if ex.get("memoryInBytes"):
            assert act.resources.memory == int(ex["memoryInBytes"])
        assert act.resources.cpu == float(ex.get("coreCount", 1))
        lines = act.run.splitlines()
        if ex["runtimeInSeconds"] * 0.001 >= 0.001:
            assert f"sleep {ex['runtimeInSeconds'] * 0.001:.3f}".rstrip("0") in lines
        assert act.run.count("s' '' > ") + act.run.count(": > ") == len(task["outputFiles"])
        reads = " ".join(ln for ln in lines if ln.startswith(("cat ", "set -- ", "for f in ")))
        # every input is read (at its path made relative to the work directory)
        assert all(q in reads for q in io[act.name][0]) and len(io[act.name][0]) == len(
            set(task["inputFiles"]))
        assert ".." not in act.run.split()
    # Round trip through AkôFlow YAML.
    back = parse_workflow_text(dump_yaml(spec), strict=True)
    assert back.model_dump() == spec.model_dump()


@pytest.mark.usefixtures("needs_traces")
def test_noop_and_scale() -> None:
    trace = WFCOMMONS / "helloworld-chain-5-chameleon.json"
    assert all(a.run == "true" for a in import_wfformat(trace, noop=True).activities)
    first = import_wfformat(trace, scale=0.01).activities[0]
    assert "sleep 1.004" in first.run.splitlines()  # 100.376 s recorded
    assert not any(ln.startswith("sleep") for ln in
                   import_wfformat(trace, scale=0).activities[0].run.splitlines())
    assert import_wfformat(trace, name="hello").name == "hello"
    with pytest.raises(SpecError, match="workflow name"):
        import_wfformat(trace, name=" ")
    with pytest.raises(SpecError, match="scale: must be a finite number >= 0"):
        import_wfformat(trace, scale=-1)


@pytest.mark.usefixtures("needs_traces")
def test_commands_run_and_create_tiny_outputs(tmp_path: Path) -> None:
    spec = import_wfformat(WFCOMMONS / "rnaseq-dirt02-001.json", scale=0)
    act = spec.activities[0]
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["bash", "-euc", act.run], cwd=work, check=True, timeout=30)
    made = sorted(p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file())
    assert made == [
        "c3/939792588c576e6c298ccb479dce57/samplesheet.valid.csv",
        "c3/939792588c576e6c298ccb479dce57/versions.yml",
    ]
    assert all((work / m).stat().st_size <= 4096 for m in made)
    assert (work / made[0]).stat().st_size == 1378


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(doc))
    return path


def test_older_workflow_tasks_format(tmp_path: Path) -> None:
    doc = {
        "name": "old style/trace",
        "schemaVersion": "1.3",
        "workflow": {
            "tasks": [
                {
                    "name": "split",
                    "type": "compute",
                    "runtime": 10,
                    "parents": [],
                    "cores": 2,
                    "memory": 1024,
                    "files": [
                        {"link": "output", "name": "chunk.0", "size": 9000},
                        {"link": "input", "name": "in.txt", "size": 5},
                    ],
                },
                {
                    "name": "work one",
                    "type": "compute",
                    "runtime": 0.2,
                    "parents": ["split"],
                    "files": [{"link": "output", "name": "../../etc/out", "size": 0}],
                },
            ]
        },
    }
    spec = import_wfformat(_write(tmp_path, doc), scale=1)
    assert spec.name == "old_style_trace"
    split, work = spec.activities
    # in.txt is the workflow's own input: read when it was put in place (`--data`)
    assert split.run == ('set --\nfor f in in.txt; do [ ! -e "$f" ] || set -- "$@" "$f"; done\n'
                         '[ "$#" -eq 0 ] || cat -- "$@" > /dev/null\nsleep 10\n'
                         "printf '%4096s' '' > chunk.0\n")
    assert (split.resources.cpu, split.resources.memory) == (2.0, 1024 * 1024)
    assert work.name == "work_one" and work.depends_on == ["split"]
    assert work.run == "sleep 0.2\nmkdir -p -- etc\n: > etc/out\n"


def test_bad_traces(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read trace"):
        import_wfformat(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SpecError, match=r"broken.json:1: not valid JSON"):
        import_wfformat(tmp_path / "broken.json")
    with pytest.raises(SpecError, match="not a WfFormat trace"):
        import_wfformat(_write(tmp_path, {"name": "x"}))
    cyclic = {
        "name": "c",
        "workflow": {"tasks": [{"name": "a", "parents": ["b"]}, {"name": "b", "parents": ["a"]}]},
    }
    with pytest.raises(SpecError, match="cycle: a -> b -> a"):
        import_wfformat(_write(tmp_path, cyclic))


def test_sanitize_name() -> None:
    assert sanitize_name("a b/c:d") == "a_b_c_d"
    assert sanitize_name("..x") == "x"
    long = sanitize_name("y" * 300)
    assert len(long) == 100 and long != sanitize_name("y" * 299)
