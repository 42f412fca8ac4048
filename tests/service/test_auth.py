"""Nobody in without the token: every operation of the OpenAPI document, walked without a
token and with a wrong one, answers 401; read-only tokens and browser sessions may only
read; the token file is private; the manifest is never served; bodies are capped."""

from __future__ import annotations

import base64
import re
import stat
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.service.served import Served, server_env

FILLERS = {"workflow_id": "1", "run_id": "1", "task_id": "split", "activity": "split",
           "section": "dag", "stream": "stdout"}


def operations(doc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda m: FILLERS[m.group(1)], path)
        for method in item:
            out.append((method.upper(), concrete))
    return out


@pytest.fixture(scope="module")
def doc(served: Served) -> dict[str, Any]:
    served.submit_yaml("name: tiny\nspec:\n  activities:\n    - {name: split, run: 'true'}\n")
    r = served.client().get("/openapi.json")
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def test_the_document_covers_every_route_family(doc: dict[str, Any]) -> None:
    paths = set(doc["paths"])
    for p in ("/akoflow-api/workflows/", "/akoflow-server/workflow/", "/workflows",
              "/ga4gh/wes/v1/runs", "/ga4gh/wes/v1/runs/{run_id}/tasks",
              "/akoflow-api/workflows/{workflow_id}/events/", "/akoflow-api/events/",
              "/akoflow-api/workflows/{workflow_id}/prov/", "/auth/session"):
        assert p in paths
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert len(operations(doc)) >= 30


@pytest.mark.parametrize("credential", [None, "Bearer wrong-token-0123456789abcdef",
                                        "Basic " + base64.b64encode(b"x:wrong").decode(),
                                        "Token something"])
def test_every_operation_needs_the_token(served: Served, doc: dict[str, Any],
                                         credential: str | None) -> None:
    headers = {"Authorization": credential} if credential else {}
    with httpx.Client(base_url=served.url, trust_env=False, timeout=30) as c:
        for method, path in [*operations(doc), ("GET", "/openapi.json"),
                             ("GET", "/no/such/route")]:
            r = c.request(method, path, headers=headers, json={} if method == "POST" else None)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["status_code"] == 401
            assert r.headers["www-authenticate"].startswith("Bearer")


def test_basic_auth_carries_the_token_as_password(served: Served) -> None:
    basic = base64.b64encode(f"anyone:{served.token}".encode()).decode()
    with httpx.Client(base_url=served.url, trust_env=False) as c:
        r = c.get("/ga4gh/wes/v1/runs", headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200


def test_read_only_tokens_may_only_read(served: Served) -> None:
    ro = subprocess.run([sys.executable, "-m", "akoflow", "serve", "--new-readonly-token"],
                        capture_output=True, text=True, env=server_env(served.home),
                        check=True).stdout.strip()
    # The service reads its token files at start; a token made later needs a restart.
    from tests.service.served import start_server

    srv = start_server(served.home)
    try:
        c = srv.client(token=ro)
        assert c.get("/akoflow-api/workflows/").status_code == 200
        r = c.post("/akoflow-api/workflows/1/cancel/", json={})
        assert r.status_code == 403 and "read-only" in r.json()["msg"]
        assert c.post("/akoflow-api/workflows/", json={"workflow": ""}).status_code == 403
    finally:
        srv.stop()


def test_browser_session_cookie_reads_but_never_writes(served: Served) -> None:
    with httpx.Client(base_url=served.url, trust_env=False) as c:
        r = c.post("/auth/session", headers={"Authorization": f"Bearer {served.token}"})
        assert r.status_code == 204
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/akoflow-api/workflows/").status_code == 200  # the cookie alone
        assert c.post("/akoflow-api/workflows/1/cancel/", json={}).status_code == 403
        value = c.cookies["akoflow_session"]
    forged = value.replace("read.", "admin.", 1) if value.startswith("read.") else \
        value[:-4] + "0000"
    with httpx.Client(base_url=served.url, trust_env=False) as c:
        r = c.get("/akoflow-api/workflows/", headers={"Cookie": f"akoflow_session={forged}"})
        assert r.status_code == 401  # a changed cookie is refused


def test_static_shell_is_the_only_open_door_and_holds_no_data(served: Served) -> None:
    with httpx.Client(base_url=served.url, trust_env=False) as c:
        for path in ("/", "/ui/app.js", "/ui/app.css", "/ui/report.css", "/ui/auth.html"):
            r = c.get(path)
            assert r.status_code == 200, path
            assert "tiny" not in r.text and served.token not in r.text
            assert "default-src 'none'" in r.headers["content-security-policy"]
        assert c.post("/").status_code == 401


def test_token_file_is_private_and_printed(served: Served) -> None:
    path = served.home / "server" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    printed = subprocess.run([sys.executable, "-m", "akoflow", "serve", "--print-token"],
                             capture_output=True, text=True, env=server_env(served.home),
                             check=True).stdout.strip()
    assert printed == served.token


def test_the_manifest_is_never_served(served: Served) -> None:
    c = served.client()
    db = served.home / "manifest.db"
    for path in (str(db), "../../../manifest.db", "../../../server/token", "/etc/passwd"):
        r = c.get("/akoflow-api/workflows/1/files/content/", params={"path": path})
        assert r.status_code == 404, (path, r.status_code)
        assert b"SQLite format" not in r.content


def test_request_bodies_are_capped(served: Served) -> None:
    c = served.client()
    r = c.post("/akoflow-api/workflows/", content=b"x" * (17 << 20),
               headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["status_code"] == 413


def test_serve_without_its_extra_names_the_install(tmp_path: Any) -> None:
    code = ("import sys; sys.modules['fastapi'] = None; sys.argv = ['akoflow', 'serve'];"
            "from akoflow.cli.main import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=server_env(tmp_path / "home"))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "pip install 'akoflow[serve]'" in lines[0]
