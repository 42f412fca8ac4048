"""`akoflow serve`: run the application under uvicorn (TLS when given a certificate)."""

from __future__ import annotations

import ipaddress
import sys

from akoflow import service
from akoflow.server import tokens
from akoflow.server.app import ServeConfig, create_app

GRACE = 2  # seconds open streams get to end when the service stops


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def banner(cfg: ServeConfig) -> str:
    scheme = "https" if cfg.certfile else "http"
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    token = tokens.admin_token(service.home())
    lines = [f"akoflow serve: {scheme}://{host}:{cfg.port}/  (API, WES, events, web view)",
             f"  open in a browser: {scheme}://{host}:{cfg.port}/#token={token}",
             f"  token file: {service.home() / 'server' / 'token'}"]
    if not loopback(cfg.host) and not cfg.certfile:
        lines.append("  warning: listening beyond loopback without TLS: tokens cross the "
                     "network in clear (use --certfile/--keyfile or a TLS reverse proxy)")
    return "\n".join(lines)


def serve(cfg: ServeConfig) -> None:
    import uvicorn

    app = create_app(cfg)
    print(banner(cfg), file=sys.stderr, flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning",
                ssl_certfile=cfg.certfile, ssl_keyfile=cfg.keyfile,
                timeout_graceful_shutdown=GRACE, proxy_headers=False, server_header=False,
                limit_concurrency=1000)
