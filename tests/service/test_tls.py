"""`akoflow serve --certfile --keyfile` serves https, and the browser cookie is then Secure."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.service.served import start_server


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    srv = start_server(tmp_path / "home", "--certfile", str(cert), "--keyfile", str(key),
                       scheme="https")
    try:
        with httpx.Client(verify=str(cert), trust_env=False) as c:
            r = c.get(f"{srv.url}/ga4gh/wes/v1/service-info",
                      headers={"Authorization": f"Bearer {srv.token}"})
            assert r.status_code == 200 and r.json()["type"]["artifact"] == "wes"
            r = c.post(f"{srv.url}/auth/session",
                       headers={"Authorization": f"Bearer {srv.token}"})
            assert "secure" in r.headers["set-cookie"].lower()
        with pytest.raises(httpx.HTTPError):  # plain http is not spoken there
            httpx.get(f"http://127.0.0.1:{srv.port}/", timeout=5, trust_env=False)
    finally:
        srv.stop()
