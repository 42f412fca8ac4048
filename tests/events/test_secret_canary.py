"""A webhook secret is used (every delivery is signed with it) and shown nowhere.

A workflow with a canary secret runs through the real CLI, delivering to a loopback
receiver; then every command that prints something runs on it (human and JSON forms), and
every file the run, the crate and the report produced is read (the crate unzipped too).
The canary appears in none of it. The manifest itself keeps the secret (it must, to sign
later deliveries): it is the one file not searched, and it lives in the user's
AKOFLOW_HOME.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zipfile
from pathlib import Path

from webhook_helpers import Receiver, free_port

from tests.conftest import ak

CANARY = "canary-5ecret-7f3a9c"


def _spec(url: str) -> str:
    return f"""\
name: secretive
x-token: &tok {CANARY}
spec:
  runtime: local
  license: MIT
  webhooks:
    - name: ops
      url: {url}
      secret: *tok
  activities:
    - name: first
      run: echo one > one.txt
    - name: flaky
      run: |
        if [ ! -f tried ]; then touch tried; echo oops >&2; exit 3; fi
        cat one.txt > two.txt
      dependsOn: [first]
      retries: 1
    - name: broken
      run: exit 4
      dependsOn: [first]
    - name: never
      run: 'true'
      dependsOn: [broken]
"""


def _all_text(root: Path) -> list[tuple[Path, bytes]]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "manifest.db" and not p.name.startswith("manifest.db-"):
            out.append((p, p.read_bytes()))
    return out


def test_no_output_holds_the_secret(akhome: Path, tmp_path: Path) -> None:
    receiver = Receiver(free_port())
    receiver.start()
    try:
        wf = tmp_path / "wf.yaml"
        wf.write_text(_spec(receiver.url))
        outputs = [ak("validate", str(wf), "--json", home=akhome),
                   ak("run", str(wf), home=akhome)]
        assert outputs[-1].returncode == 1  # `broken` fails for good
        outputs.append(ak("notify", home=akhome))
        hits = receiver.events()
    finally:
        receiver.stop()
    assert hits, "no webhook was delivered"
    for h in hits:  # signed with the real secret...
        expected = "sha256=" + hmac.new(CANARY.encode(), h.body, hashlib.sha256).hexdigest()
        assert h.headers["X-Akoflow-Signature"] == expected
        assert CANARY.encode() not in h.body  # ...which the body never carries
    raw = [base64.b64decode(h.json["data"]["RawWorkflow"]) for h in hits
           if "RawWorkflow" in h.json["data"]]
    assert raw and all(b"<redacted>" in r and CANARY.encode() not in r for r in raw)

    crate, report = tmp_path / "out" / "run.crate.zip", tmp_path / "out" / "report.html"
    for args in (["list"], ["status", "1"], ["describe", "1"], ["logs", "1"],
                 ["metrics", "1"], ["metrics", "1", "--samples"], ["files", "1"],
                 ["lineage", "1"], ["explain", "1", "first"], ["sites", "show", "local"]):
        outputs.append(ak(*args, home=akhome))
        outputs.append(ak(*args, "--json", home=akhome))
    for fmt in ("prov-json", "prov-n", "prov-xml", "rdf"):
        outputs.append(ak("prov", "1", "--format", fmt, home=akhome))
    for fmt in ("dot", "mermaid", "json"):
        outputs.append(ak("lineage", "1", "--format", fmt, home=akhome))
    outputs.append(ak("crate", "1", "-o", str(crate), home=akhome))
    outputs.append(ak("report", "1", "-o", str(report), home=akhome))
    for p in outputs:
        assert p.returncode in (0, 1, 2), (p.args, p.stderr)
        assert CANARY not in p.stdout and CANARY not in p.stderr, p.args
    assert json.loads(outputs[0].stdout)["webhooks"][0]["secret"] == "<redacted>"

    with zipfile.ZipFile(crate) as z:
        z.extractall(tmp_path / "unzipped")
        assert z.read("workflow/secretive.yaml").count(b"<redacted>") >= 1
    files = (_all_text(akhome) + _all_text(tmp_path / "out")
             + _all_text(tmp_path / "unzipped"))
    assert len(files) > 20 and any(p.name == "task.sh" for p, _ in files)
    leaks = [str(p) for p, data in files if CANARY.encode() in data]
    assert leaks == []
