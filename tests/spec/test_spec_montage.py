from __future__ import annotations

from collections import Counter

from gen_montage import main, montage_shape

from akoflow.spec import Dag, load_workflow


def test_default_montage_shape_is_6448() -> None:
    spec = montage_shape()
    assert len(spec.activities) == 6448
    kinds = Counter(a.name.split("_")[0] for a in spec.activities)
    assert kinds == {
        "mProject": 1288,
        "mDiffFit": 3867,
        "mConcatFit": 1,
        "mBgModel": 1,
        "mBackground": 1288,
        "mImgtbl": 1,
        "mAdd": 1,
        "mViewer": 1,
    }
    dag = Dag.from_spec(spec)
    diffs = [a.name for a in spec.activities if a.name.startswith("mDiffFit")]
    assert all(len(dag.parents(d)) == 2 for d in diffs)
    assert len(dag.parents("mConcatFit")) == len(diffs)
    assert dag.parents("mBackground_00007") == ["mBgModel", "mProject_00007"]
    assert dag.leaves() == ["mViewer"]
    assert dag.find_cycle() is None


def test_small_shape_and_cli(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert len(montage_shape(20).activities) == 5 * 20 + 8
    assert len(montage_shape(4).activities) == 4 + 6 + 1 + 1 + 4 + 3  # only 6 pairs exist
    out = tmp_path / "m.yaml"
    assert main(["gen_montage.py", str(out), "10"]) == 0
    assert capsys.readouterr().out.strip() == "montage_activities 58"
    assert len(load_workflow(out, strict=True).activities) == 58
