"""Names as AkôFlow takes them: any text up to 1,000 characters, written as-is everywhere a
user reads it, and never reaching a path, job name or shell line as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from akoflow.port.names import ident
from akoflow.spec import parse_workflow_text
from akoflow.spec.errors import SpecError
from tests.conftest import ak

LONG = "NFCORE_SAREK:SAREK:FASTQ_ALIGN_BWAMEM_MEM2_DRAGMAP_SENTIEON:BWAMEM2_MEM " * 3
HOSTILE = "x'; touch pwned; echo '$(touch pwned2)`touch pwned3`"


def names_workflow(tmp: Path) -> Path:
    wf = tmp / "names.yaml"
    long = LONG.strip()
    wf.write_text(
        "name: \"Hello World workflow\"\n"
        "spec:\n  runtime: local\n  activities:\n"
        "    - name: \"Echo Hello World\"\n"
        "      run: echo hello > hello.txt; echo \"$AKOFLOW_ACTIVITY\" > me.txt\n"
        f"    - name: \"{long}\"\n"
        "      run: cat hello.txt > long.txt\n"
        "      dependsOn: [\"Echo Hello World\"]\n"
        f"    - name: {json.dumps(HOSTILE)}\n"
        "      run: cat long.txt > last.txt\n"
        f"      dependsOn: [\"{long}\"]\n")
    return wf


def test_identifiers_are_safe_stable_and_keep_safe_names() -> None:
    assert ident("split") == "split"  # names valid before keep their paths and job names
    for name in ("Echo Hello World", LONG, HOSTILE, "../../etc", "-rf", ".hidden", "a\nb"):
        made = ident(name)
        assert made == ident(name) and len(made) <= 100
        assert all(ch.isalnum() or ch in "._-" for ch in made), made
        assert not made.startswith((".", "-"))
    assert ident("a b") != ident("a_b") and ident("a b") != ident("a  b")


def test_name_rules() -> None:
    ok = parse_workflow_text("name: w w\nspec:\n  activities:\n    - name: 'a b'\n      run: x\n")
    assert ok.activities[0].name == "a b"
    with pytest.raises(SpecError, match="longer than 1000"):
        parse_workflow_text(f"name: w\nspec:\n  activities:\n    - name: {'a' * 1001}\n"
                            "      run: x\n")
    clash = ident("a b")  # a written name equal to another's identifier
    with pytest.raises(SpecError, match="same identifier"):
        parse_workflow_text(f"name: w\nspec:\n  activities:\n    - name: 'a b'\n      run: x\n"
                            f"    - name: {clash}\n      run: x\n")


def test_names_that_look_like_paths_stay_inside_the_run(akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "paths.yaml"
    wf.write_text("name: ../../etc\nspec:\n  activities:\n"
                  "    - name: ../x\n      run: echo in > in.txt\n"
                  "    - name: a;rm -rf /\n      run: 'true'\n      dependsOn: [../x]\n")
    proc = ak("run", str(wf), home=akhome)
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(json.loads(ak("status", "1", "--json", home=akhome).stdout)["run_dir"])
    assert run_dir.parent == akhome / "runs"
    assert sorted(p.name for p in (run_dir / "activities").iterdir()) == sorted(
        f"{ident(n)}.1" for n in ("../x", "a;rm -rf /"))
    assert (run_dir / "work" / "in.txt").exists()


def test_any_name_runs_and_is_shown_as_written(akhome: Path, tmp_path: Path) -> None:
    proc = ak("run", str(names_workflow(tmp_path)), home=akhome)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    assert desc["name"] == "Hello World workflow"
    names = [a["name"] for a in desc["activities"]]
    assert names == ["Echo Hello World", LONG.strip(), HOSTILE]
    assert {a["status"] for a in desc["activities"]} == {"FINISHED"}
    run_dir = Path(json.loads(ak("status", "1", "--json", home=akhome).stdout)["run_dir"])
    work = run_dir / "work"
    assert (work / "me.txt").read_text() == "Echo Hello World\n"  # the env has the name
    assert (work / "last.txt").read_text() == "hello\n"
    assert not list(tmp_path.rglob("pwned*")) and not list(akhome.rglob("pwned*"))
    made = sorted(p.name for p in (run_dir / "activities").iterdir())
    assert made == sorted(f"{ident(n)}.1" for n in names)
    logs = ak("logs", "1", "--activity", "Echo Hello World", "--json", home=akhome,
              check=True).stdout.splitlines()
    assert logs and all(json.loads(line)["activity"] == "Echo Hello World" for line in logs)
