"""The ASGI application: routers, the gate (auth, body cap, headers), CORS and the event hub.

`create_app()` builds it from a `ServeConfig`; `akoflow serve` runs it under uvicorn. The
OpenAPI document at `/openapi.json` is generated from the routes and their models, so it
describes what the service answers (schemathesis checks that it does); the interactive docs
pages are off, since they load their scripts from a CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from akoflow import __version__, service
from akoflow.server import (
    deps,
    errors,
    routes_akoflow,
    routes_runs,
    routes_wes,
    stream,
    tokens,
    web,
)
from akoflow.server.auth import Guard

DEFAULT_MAX_BODY = 16 << 20


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    cors_origins: list[str] = field(default_factory=list)
    max_body: int = DEFAULT_MAX_BODY
    poll_interval: float = 0.2
    certfile: str | None = None
    keyfile: str | None = None


DESCRIPTION = """akoflow's HTTP service: AkôFlow's API (`/akoflow-api`, `/akoflow-server`),
akoflow's own routes beside it, GA4GH WES 1.1 (`/ga4gh/wes/v1`), Server-Sent Events of every
state change, and a live web view at `/`. Every route needs `Authorization: Bearer TOKEN`
(`akoflow serve --print-token`); see the README's "HTTP API" section."""


def create_app(config: ServeConfig | None = None) -> Any:
    """The application wrapped in its middleware (an ASGI callable)."""
    cfg = config or ServeConfig()
    hub = stream.Hub(cfg.poll_interval)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = deps.THREADS
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="akoflow", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    errors.install(app)
    for router in (routes_akoflow.router, routes_runs.router, routes_wes.router,
                   stream.router, web.router, web.shell):
        app.include_router(router)
    _bearer_scheme(app)
    guard = Guard(app, tokens.load(service.home()), cfg.max_body)
    app.state.hub = hub
    app.state.guard = guard
    outer: Any = guard
    if cfg.cors_origins:
        outer = CORSMiddleware(guard, allow_origins=cfg.cors_origins,
                               allow_methods=["GET", "POST", "DELETE"],
                               allow_headers=["Authorization", "Content-Type",
                                              "Last-Event-ID"])
    return outer


def _bearer_scheme(app: FastAPI) -> None:
    """Say in the OpenAPI document that every operation needs the bearer token."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = base()
        doc.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "basic": {"type": "http", "scheme": "basic",
                      "description": "any user name, the token as password"}}
        doc["security"] = [{"bearer": []}, {"basic": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
