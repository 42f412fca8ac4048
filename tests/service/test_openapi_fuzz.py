"""schemathesis (PyPI), run against the served OpenAPI document: no 5xx, and every answer
conforms to the document (status code, content type, schema). Bounded: a fixed number of
examples per operation and a time limit for the whole run. The two event streams are left
out: they answer with a stream that does not end, which a fuzzer cannot judge."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.service.served import Served

CHECKS = ("not_a_server_error,response_schema_conformance,status_code_conformance,"
          "content_type_conformance")


def test_schemathesis_finds_no_server_error_or_schema_violation(served: Served,
                                                              tmp_path: Path) -> None:
    served.submit_yaml(Path(__file__).resolve().parents[2].joinpath(
        "examples", "diamond.yaml").read_text())  # a real workflow 1 for ids to hit
    exe = shutil.which("st", path=str(Path(sys.executable).parent))
    assert exe, "schemathesis is not installed (it is in the dev extra)"
    proc = subprocess.run(
        [exe, "run", f"{served.url}/openapi.json", "-H", f"Authorization: Bearer {served.token}",
         "--checks", CHECKS, "--phases", "examples,coverage,fuzzing", "--max-examples", "25",
         "--exclude-path-regex", "/events/$", "--request-timeout", "30",
         "--generation-deterministic", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache goes there
        env={"PATH": "/usr/bin:/bin", "NO_PROXY": "*"})
    tail = proc.stdout[-6000:]
    assert proc.returncode == 0, tail
    assert "passed" in tail and "failed" not in tail.split("SUMMARY")[-1], tail
