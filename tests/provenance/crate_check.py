"""roc-validator (the RO-Crate community's validator), run with no network at all.

The validator resolves the crate's JSON-LD @context documents through its HTTP cache
(`requests-cache`, SQLite); its profiles (SHACL shapes) ship inside the package. Offline,
it reads only the cache, and a document not there is a "cache miss" that makes checks
skip. So: the cache is filled here from the pinned copies in
`../shared/data/rocrate-contexts/` (through a `requests` adapter that serves those two URLs
from disk and refuses every other), the validator runs as a subprocess with `--offline`
and a proxy that goes nowhere, and a run that skipped a check, missed the cache, checked
no profile we claim or wrote no report fails the test instead of passing it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests_cache import CachedSession
from urllib3 import HTTPResponse

from tests.conftest import ROOT, shared_file

CONTEXTS = ROOT.parent / "shared" / "data" / "rocrate-contexts"
PINNED = {
    "https://w3id.org/ro/crate/1.1/context": CONTEXTS / "ro-crate-1.1.jsonld",
    "https://w3id.org/ro/terms/workflow-run/context": CONTEXTS / "workflow-run.jsonld",
}
# The most derived profile akoflow claims: the validator checks it with every profile it
# inherits (Workflow Run, Process Run, Workflow RO-Crate, RO-Crate 1.1).
PROFILE = "provenance-run-crate-0.5"
LEVEL = "required"
_MISS = ("offline cache miss", "not available in the http cache")


class _Pinned(HTTPAdapter):
    """Answers the pinned URLs from disk; anything else is an error, not a download."""

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        path = PINNED.get(str(request.url))
        if path is None:
            raise ConnectionError(f"not pinned for offline validation: {request.url}")
        raw = HTTPResponse(body=io.BytesIO(path.read_bytes()), status=200,
                           headers={"Content-Type": "application/ld+json"},
                           preload_content=False, request_url=request.url)
        return self.build_response(request, raw)


def warm_cache(where: Path) -> Path:
    """A validator HTTP cache (the name `--cache-path` takes) holding the pinned contexts."""
    name = where / "http_cache"
    for path in PINNED.values():
        shared_file(path)
    session = CachedSession(cache_name=str(name), backend="sqlite", expire_after=-1,
                            allowable_methods=("GET",), allowable_codes=(200,))
    session.mount("https://", _Pinned())
    session.mount("http://", _Pinned())
    for url in PINNED:
        r = session.get(url)
        assert r.status_code == 200 and r.json()["@context"], url
    session.close()
    return name


@cache
def profile_ids() -> dict[str, str]:
    """Profile URI -> the validator's identifier for it, from the validator itself."""
    code = ("import json; from rocrate_validator import services; "
            "print(json.dumps({p.uri: p.identifier for p in services.get_profiles()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=_offline_env(), check=True).stdout
    ids: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return ids


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    # Nothing listens on port 9: a request that slipped past offline mode fails at once.
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               ROCRATE_VALIDATOR_AUTO_WARM="0")
    return env


def claimed_profiles(metadata: dict[str, Any]) -> set[str]:
    """The profile URIs a crate claims: on its root and on its metadata descriptor."""
    g = {e["@id"]: e for e in metadata["@graph"]}
    out: set[str] = set()
    for ident in ("./", "ro-crate-metadata.json"):
        value = g[ident].get("conformsTo") or []
        for item in value if isinstance(value, list) else [value]:
            out.add(item["@id"])
    return out


def validate(crate: Path, cache_name: Path, out: Path) -> dict[str, Any]:
    """Run the validator CLI on a crate (zip or directory); its JSON report."""
    report = out / "report.json"
    argv = [sys.executable, "-c", "from rocrate_validator.cli import cli; cli()",
            "-y", "--disable-color", "validate", "--offline", "--cache-path", str(cache_name),
            "-p", PROFILE, "-l", LEVEL, "-f", "json", "-o", str(report), "--no-paging",
            str(crate)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                          env=_offline_env(), cwd=out)
    text = (proc.stdout + proc.stderr).lower()
    assert report.is_file(), f"the validator wrote no report (exit {proc.returncode}):\n{text}"
    assert not any(m in text for m in _MISS), f"the validator missed its cache:\n{text}"
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def assert_valid(crate: Path, metadata: dict[str, Any], cache_name: Path, out: Path) -> None:
    """No REQUIRED check fails for any profile the crate claims, and every one was checked."""
    report = validate(crate, cache_name, out)
    stats = report["statistics"]
    checked = set(stats["profiles"])
    ids = profile_ids()
    for uri in claimed_profiles(metadata):
        assert uri in ids, f"the crate claims {uri}, which the validator does not know"
        assert ids[uri] in checked, f"{ids[uri]} was not checked: {sorted(checked)}"
    assert stats["total_checks"] > 50 and stats["total_checks_by_severity"]["REQUIRED"] > 50
    assert report["skipped_checks"] == 0, report["skipped_check_details"]
    failed = [f"{i['check']['identifier']}: {i['message']} ({i.get('violatingEntity')})"
              for i in report["issues"] if i["severity"] == "REQUIRED"]
    assert report["passed"] and not failed, "\n".join(failed)
