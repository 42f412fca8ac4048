"""Server-Sent Events: every state change of one workflow, or of all, as it is committed.

One poller (`Hub`) reads the manifest's run log for rows newer than the last it saw, every
`interval` seconds (one indexed query however many clients listen), and hands the batch to
every open stream. A stream first catches up from the database (from `Last-Event-ID`, the
`after` parameter, or, for one workflow, its beginning), then follows the hub; run-log ids
grow in commit order, so "newer than the last id sent" loses nothing between the two.

Messages: `event: state` for each run-log row (`akoflow.events.live.state_body`), followed,
for the rows a webhook announces, by `event: ACTIVITY_COMPLETED` (`ACTIVITY_FAILED`,
`WORKFLOW_DONE`, `WORKFLOW_FAILED`) carrying the webhook's own body. The `id:` field is the
run-log row id, put on the last message of each row, so a client that reconnects gets any
part of a row it missed again rather than lose it. A comment line every `KEEPALIVE` seconds
keeps proxies and SSH tunnels from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from akoflow.events.live import LiveMessage, messages
from akoflow.server import deps
from akoflow.server.errors import RESPONSES

log = logging.getLogger(__name__)
PAGE = 500
KEEPALIVE = 15.0
QUEUE = 256  # batches a slow client may fall behind before it re-reads from the database


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[list[LiveMessage]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE))
    lagged: bool = False


class Hub:
    """The single poller of the run log that every open stream follows."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.cursor = 0
        self.subscribers: set[_Subscriber] = set()

    async def run(self) -> None:
        self.cursor = await asyncio.to_thread(lambda: deps.manifest().last_event_id())
        while True:
            try:
                batch = await asyncio.to_thread(read, self.cursor, None, PAGE)
            except Exception:  # a locked or busy manifest: try again next tick
                log.exception("reading the run log failed")
                batch = []
            if batch:
                self.cursor = batch[-1].row
                for sub in list(self.subscribers):
                    try:
                        sub.queue.put_nowait(batch)
                    except asyncio.QueueFull:
                        sub.lagged = True
            await asyncio.sleep(0 if rows(batch) >= PAGE else self.interval)

    def subscribe(self) -> _Subscriber:
        sub = _Subscriber()
        self.subscribers.add(sub)
        return sub


def read(after: int, wf_id: int | None, limit: int) -> list[LiveMessage]:
    """Messages for up to `limit` run-log rows after `after` (whole rows only)."""
    m = deps.manifest()
    return messages(m, m.events_after(after, wf_id, limit))


def rows(batch: list[LiveMessage]) -> int:
    return len({m.row for m in batch})


def encode(batch: list[LiveMessage]) -> str:
    out = []
    for i, msg in enumerate(batch):
        last_of_row = i + 1 == len(batch) or batch[i + 1].row != msg.row
        head = f"event: {msg.event}\n" + (f"id: {msg.row}\n" if last_of_row else "")
        out.append(f"{head}data: {json.dumps(msg.data, separators=(',', ':'))}\n\n")
    return "".join(out)


async def follow(hub: Hub, request: Request, wf_id: int | None, after: int
                 ) -> AsyncIterator[str]:
    sub = hub.subscribe()
    cursor = after
    try:
        yield "retry: 2000\n\n"
        while True:
            while True:  # catch up from the database
                batch = await asyncio.to_thread(read, cursor, wf_id, PAGE)
                if batch:
                    cursor = batch[-1].row
                    yield encode(batch)
                if rows(batch) < PAGE:
                    break
            sub.lagged = False
            while not sub.lagged:
                try:
                    batch = await asyncio.wait_for(sub.queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                mine = [m for m in batch if m.row > cursor
                        and (wf_id is None or m.workflow_id == wf_id)]
                if mine:
                    cursor = mine[-1].row
                    yield encode(mine)
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    sub.queue.get_nowait()
    finally:
        hub.subscribers.discard(sub)


router = APIRouter(responses=RESPONSES, tags=["events"])
SSE_DOC: dict[int | str, dict[str, Any]] = {200: {
    "description": "text/event-stream of `state` and webhook-shaped events",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
LastId = Annotated[str | None, Header(alias="Last-Event-ID", pattern=r"^\d{0,18}$")]
After = Annotated[int | None, Query(ge=0, le=2**62, description="start after this run-log "
                                    "id (Last-Event-ID wins when both are sent)")]


def _response(request: Request, wf_id: int | None, after: int) -> StreamingResponse:
    hub: Hub = request.app.state.hub
    return StreamingResponse(follow(hub, request, wf_id, after), media_type="text/event-stream",
                             headers={"x-accel-buffering": "no"})


@router.get("/akoflow-api/events/", response_class=StreamingResponse, responses=SSE_DOC,
            summary="Every workflow's state changes (SSE), from now unless resumed")
def all_events(request: Request, after: After = None, last_event_id: LastId = None
               ) -> StreamingResponse:
    start = int(last_event_id) if last_event_id else after
    if start is None:
        start = deps.manifest().last_event_id()
    return _response(request, None, start)


@router.get("/akoflow-api/workflows/{workflow_id}/events/", response_class=StreamingResponse,
            responses=SSE_DOC, summary="One workflow's state changes (SSE), from its start")
def workflow_events(workflow_id: int, request: Request, after: After = None,
                    last_event_id: LastId = None) -> StreamingResponse:
    wf = deps.workflow(deps.manifest(), workflow_id)
    start = int(last_event_id) if last_event_id else (after or 0)
    return _response(request, wf.id, start)
