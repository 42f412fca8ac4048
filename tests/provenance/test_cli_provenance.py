"""The provenance commands as a user types them, on a real run."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from prov.model import ProvDocument

from tests.conftest import EXAMPLES, ak


def test_provenance_commands(akhome: Path, tmp_path: Path) -> None:
    ak("run", str(EXAMPLES / "diamond.yaml"), home=akhome, check=True)
    doc = ProvDocument.deserialize(content=ak("prov", "1", home=akhome, check=True).stdout,
                                   format="json")
    assert any("numbers.txt" in str(rec) for rec in doc.get_records())
    for fmt in ("prov-n", "prov-xml", "rdf"):
        out = tmp_path / f"run.{fmt}"
        ak("prov", "1", "--format", fmt, "-o", str(out), home=akhome, check=True)
        assert out.stat().st_size > 500
    mermaid = ak("lineage", "1", "--file", "all.txt", "--direction", "up", home=akhome,
                 check=True).stdout
    assert mermaid.startswith("flowchart") and "join" in mermaid and "split" in mermaid
    dot = ak("lineage", "1", "--activity", "split", "--direction", "down", "--format", "dot",
             home=akhome, check=True).stdout
    assert dot.startswith("digraph") and "all.txt" in dot
    crate = tmp_path / "run.crate.zip"
    ak("crate", "1", "-o", str(crate), home=akhome, check=True)
    names = zipfile.ZipFile(crate).namelist()
    assert "ro-crate-metadata.json" in names
    report = tmp_path / "report.html"
    ak("report", "1", "-o", str(report), home=akhome, check=True)
    html = report.read_text()
    assert "<html" in html and "diamond" in html and "http://" not in html.split("<body", 1)[0]
    summary = json.loads(ak("metrics", "1", "--json", home=akhome, check=True).stdout)
    assert [s["activity"] for s in summary] == ["split", "left", "right", "join"]
    samples = json.loads(ak("metrics", "1", "--samples", "--json", home=akhome).stdout)
    assert samples and all("rss" in s for s in samples)
    used = json.loads(ak("files", "1", "--used", "--json", home=akhome, check=True).stdout)
    assert {(f["activity"], f["path"]) for f in used} >= {("join", "even.txt"),
                                                          ("join", "odd.txt")}
    assert json.loads(ak("notify", "--json", home=akhome, check=True).stdout) == {
        "delivered": 0, "pending": 0}
