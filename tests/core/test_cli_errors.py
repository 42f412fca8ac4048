"""A user's mistakes on the command line: one `error:` line each, the right exit code, and
no change to what is recorded."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import EXAMPLES, ak


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_mistakes_after_a_run(akhome: Path) -> None:
    assert ak("run", str(EXAMPLES / "diamond.yaml"), "--quiet", home=akhome).returncode == 0
    before = ak("logs", "1", "--json", home=akhome, check=True).stdout

    bad = ak("logs", "1", "--status", "bogus", home=akhome)
    assert bad.returncode == 2 and "neither a state nor an event kind" in \
        _one_error_line(bad.stderr)
    bad = ak("logs", "1", "--since", "garbage", home=akhome)
    assert bad.returncode == 2 and "akoflow logs --help" in _one_error_line(bad.stderr)
    bad = ak("lineage", "1", "--file", "nosuch.txt", home=akhome)
    assert bad.returncode == 1 and "no file 'nosuch.txt'" in _one_error_line(bad.stderr)
    bad = ak("explain", "1", "nosuch", home=akhome)
    assert bad.returncode == 1 and "no activity 'nosuch'" in _one_error_line(bad.stderr)

    done = ak("cancel", "1", home=akhome, check=True)
    assert "already FINISHED; nothing to cancel" in done.stdout
    st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert st["status"] == "FINISHED" and st["counts"] == {"FINISHED": 4}
    assert ak("logs", "1", "--json", home=akhome, check=True).stdout == before  # no trace left
