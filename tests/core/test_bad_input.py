"""Bad input: one clear error line, exit 2, and nothing written to the manifest."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ak


def _workflows(home: Path) -> int:
    db = home / "manifest.db"
    if not db.exists():
        return 0
    return int(sqlite3.connect(db).execute("SELECT COUNT(*) FROM workflow").fetchone()[0])


CASES = {
    "garbage": "name: [unclosed\nspec: {activities: [",
    "not_mapping": "- just\n- a list\n",
    "no_activities": "name: x\nspec:\n  runtime: local\n",
    "empty_name": "name: wf\nspec:\n  activities:\n    - name: ''\n      run: 'true'\n",
    "unknown_dep": "name: wf\nspec:\n  activities:\n    - name: alpha\n      run: 'true'\n"
                   "    - name: b\n      run: 'true'\n      dependsOn: [alpah]\n",
    "cycle": "name: wf\nspec:\n  activities:\n    - name: a\n      run: 'true'\n"
             "      dependsOn: [b]\n    - name: b\n      run: 'true'\n      dependsOn: [a]\n",
    "bad_unit": "name: wf\nspec:\n  activities:\n    - name: a\n      run: 'true'\n"
                "      memoryLimit: 12XB\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["validate", "run", "submit"])
def test_bad_yaml_is_one_line_exit_2(akhome: Path, tmp_path: Path, case: str,
                                     command: str) -> None:
    f = tmp_path / f"{case}.yaml"
    f.write_text(CASES[case])
    proc = ak(command, str(f), home=akhome)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors and all(str(f) in ln or f.name in ln for ln in errors), proc.stderr
    assert _workflows(akhome) == 0


def test_messages_are_helpful(akhome: Path, tmp_path: Path) -> None:
    f = tmp_path / "dep.yaml"
    f.write_text(CASES["unknown_dep"])
    assert "did you mean 'alpha'" in ak("validate", str(f), home=akhome).stderr
    f.write_text(CASES["cycle"])
    assert "a -> b -> a" in ak("validate", str(f), home=akhome).stderr or \
        "b -> a -> b" in ak("validate", str(f), home=akhome).stderr
    f.write_text(CASES["empty_name"])
    err = ak("validate", str(f), home=akhome).stderr
    assert ":4:" in err and "name" in err  # the line of the offending name


def test_binary_and_huge_files(akhome: Path, tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)) * 64)
    huge = tmp_path / "huge.yaml"
    with open(huge, "w") as fh:
        fh.write("name: big\nspec:\n  activities:\n")
        fh.write("    - {name: a, run: 'true'}\n" + "# padding\n" * 1_100_000)
    for f in (binary, huge):
        proc = ak("run", str(f), home=akhome)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert _workflows(akhome) == 0


def test_missing_file_and_unknown_ids(akhome: Path) -> None:
    proc = ak("run", "/nonexistent/wf.yaml", home=akhome)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for cmd in (["status", "42"], ["cancel", "42"], ["logs", "nope"]):
        proc = ak(*cmd, home=akhome)
        assert proc.returncode == 1 and proc.stderr.startswith("error: no workflow"), proc.stderr


def test_unknown_site_is_refused_before_registration(akhome: Path, tmp_path: Path) -> None:
    f = tmp_path / "wf.yaml"
    f.write_text("name: wf\nspec:\n  runtime: marsnode\n  activities:\n"
                 "    - name: a\n      run: 'true'\n")
    proc = ak("run", str(f), home=akhome)
    assert proc.returncode == 1 and "unknown site 'marsnode'" in proc.stderr
    assert _workflows(akhome) == 0
