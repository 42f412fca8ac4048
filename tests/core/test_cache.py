"""`cache: true`: identical activities reuse verified outputs instead of running again."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.conftest import ak

WF = """name: cached
spec:
  activities:
    - name: make
      cache: true
      run: |
        echo "$AKOFLOW_ACTIVITY" >> "$HOME_LOG"
        seq 1 {n} > data.txt
    - name: use
      cache: true
      dependsOn: [make]
      run: |
        echo "$AKOFLOW_ACTIVITY" >> "$HOME_LOG"
        wc -l < data.txt > count.txt
    - name: always
      dependsOn: [use]
      run: |
        echo "$AKOFLOW_ACTIVITY" >> "$HOME_LOG"
        cat count.txt
"""


def _run(home: Path, wf: Path, log: Path) -> dict:  # type: ignore[type-arg]
    proc = ak("run", str(wf), "--json", home=home, env={"HOME_LOG": str(log)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_second_run_reuses_and_a_change_invalidates(akhome: Path, tmp_path: Path) -> None:
    log = tmp_path / "executions.log"
    wf = tmp_path / "wf.yaml"
    wf.write_text(WF.format(n=10))
    first = _run(akhome, wf, log)
    second = _run(akhome, wf, log)
    assert Counter(log.read_text().split()) == {"make": 1, "use": 1, "always": 2}
    assert (Path(second["work_dir"]) / "count.txt").read_text().strip() == "10"
    logs = ak("logs", str(second["id"]), "--activity", "make", home=akhome).stdout
    assert "executor cache" in logs
    assert first["id"] != second["id"]
    # changing the command of `make` changes both identities (Merkle): both run again
    wf.write_text(WF.format(n=20))
    third = _run(akhome, wf, log)
    assert Counter(log.read_text().split()) == {"make": 2, "use": 2, "always": 3}
    assert (Path(third["work_dir"]) / "count.txt").read_text().strip() == "20"


def test_tampered_outputs_are_not_reused(akhome: Path, tmp_path: Path) -> None:
    log = tmp_path / "executions.log"
    wf = tmp_path / "wf.yaml"
    wf.write_text(WF.format(n=5))
    first = _run(akhome, wf, log)
    (Path(first["work_dir"]) / "data.txt").write_text("tampered\n")
    _run(akhome, wf, log)
    assert Counter(log.read_text().split())["make"] == 2
