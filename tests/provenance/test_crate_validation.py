"""The RO-Crate against the community validator (roc-validator, offline), and moved.

Three real runs: the diamond with retried failures, a failing run whose retries run out
(descendants skipped), and the 619-activity WfCommons Montage trace with a data cap that
leaves files out. Each crate is unzipped somewhere else and validated there: no REQUIRED
check of any profile it claims may fail, and every file it lists must be there.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from crate_check import assert_valid, claimed_profiles, warm_cache
from provruns import Run, run_workflow

from akoflow import service
from akoflow.provenance.crate import write_crate
from akoflow.provenance.crate_payload import Limits
from akoflow.spec import import_wfformat
from akoflow.spec.dump import dump_yaml
from tests.conftest import EXAMPLES, WFCOMMONS, shared_file

MONTAGE = WFCOMMONS / "montage-chameleon-2mass-025d-001.json"


@pytest.fixture(scope="module")
def cache_name(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return warm_cache(tmp_path_factory.mktemp("validator-cache"))


@pytest.fixture(scope="module")
def more_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    home = tmp_path_factory.mktemp("crate-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AKOFLOW_HOME", str(home))
        mp.setenv("AKOFLOW_SAMPLE_INTERVAL", "0.2")
        montage = dump_yaml(import_wfformat(shared_file(MONTAGE), scale=0.0))
        out = {"failing": run_workflow(home, (EXAMPLES / "failing.yaml").read_text(), {}),
               "montage": run_workflow(home, montage, {})}
        yield out
        for r in out.values():
            r.manifest.close()


def unzip_elsewhere(zip_path: Path, where: Path) -> dict[str, Any]:
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(where)
    metadata: dict[str, Any] = json.loads((where / "ro-crate-metadata.json").read_text())
    return metadata


def assert_resolves(root: Path, metadata: dict[str, Any]) -> int:
    """Every File the metadata lists is in the unzipped crate, at its size; every file in
    the crate is listed. Returns how many files were listed."""
    listed = set()
    for e in metadata["@graph"]:
        types = e["@type"] if isinstance(e["@type"], list) else [e["@type"]]
        if "File" not in types:
            continue
        path = root / unquote(e["@id"])
        assert path.is_file(), f"{e['@id']} is listed but not in the crate"
        assert path.stat().st_size == int(e["contentSize"]), e["@id"]
        listed.add(path)
    present = {p for p in root.rglob("*") if p.is_file()} - {root / "ro-crate-metadata.json"}
    assert present == listed, present ^ listed
    return len(listed)


def check(run: Run, tmp: Path, cache_name: Path, limits: Limits | None = None
          ) -> dict[str, Any]:
    zip_path = write_crate(run.manifest, run.wf.id, tmp / "made" / "run.crate.zip",
                           limits=limits).path
    moved = tmp / "somewhere" / "else"
    metadata = unzip_elsewhere(zip_path, moved)
    assert claimed_profiles(metadata) >= {
        "https://w3id.org/ro/crate/1.1", "https://w3id.org/ro/wfrun/process/0.5",
        "https://w3id.org/ro/wfrun/workflow/0.5", "https://w3id.org/ro/wfrun/provenance/0.5",
        "https://w3id.org/workflowhub/workflow-ro-crate/1.0"}
    assert assert_resolves(moved, metadata) > 0
    assert_valid(moved, metadata, cache_name, tmp)
    return metadata


def test_diamond_with_retries_validates(diamond: Run, tmp_path: Path, cache_name: Path
                                        ) -> None:
    g = {e["@id"]: e for e in check(diamond, tmp_path, cache_name)["@graph"]}
    assert g["#attempt-join-1"]["actionStatus"] == "http://schema.org/FailedActionStatus"
    assert g["#attempt-join-2"]["instrument"] == {"@id": "#tool-join"}


def test_failing_run_validates(more_runs: dict[str, Run], tmp_path: Path, cache_name: Path
                               ) -> None:
    run = more_runs["failing"]
    assert run.status == "FAILED"
    g = {e["@id"]: e for e in check(run, tmp_path, cache_name)["@graph"]}
    assert [g[f"#attempt-flaky-{n}"]["exitCode"] for n in (1, 2, 3)] == [3, 3, 3]
    assert "#attempt-after-flaky-1" not in g


def test_montage_validates_with_files_left_out(more_runs: dict[str, Run], tmp_path: Path,
                                               cache_name: Path) -> None:
    run = more_runs["montage"]
    assert run.status == "FINISHED"
    metadata = check(run, tmp_path, cache_name, Limits(max_data_bytes=1024 * 1024))
    left = [e for e in metadata["@graph"] if str(e["@id"]).startswith("#left-out/")]
    assert left and all("not in this crate" in e["description"] for e in left)
    readme = (tmp_path / "somewhere" / "else" / "README.md").read_text()
    assert f"- `{left[0]['name']}`" in readme
    steps = [e for e in metadata["@graph"] if e["@type"] == "HowToStep"]
    assert len(steps) == 619


def test_service_license_defaults(diamond: Run, tmp_path: Path) -> None:
    r = service.write_crate(diamond.manifest, diamond.wf.id, tmp_path / "a.zip",
                            license="CC-BY-4.0")
    with zipfile.ZipFile(r.path) as z:
        g = {e["@id"]: e for e in json.loads(z.read("ro-crate-metadata.json"))["@graph"]}
    assert g["./"]["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
    r = service.write_crate(diamond.manifest, diamond.wf.id, tmp_path / "b.zip")
    with zipfile.ZipFile(r.path) as z:
        g = {e["@id"]: e for e in json.loads(z.read("ro-crate-metadata.json"))["@graph"]}
    assert g["./"]["license"] == {"@id": "#license-unspecified"}
