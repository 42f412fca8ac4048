"""The gate in front of every route: who is asking, how big the body is, which headers go out.

Credentials, checked on every request before routing (so an unknown path without a token is
a 401 too, and probing learns nothing):

* `Authorization: Bearer TOKEN` — what API clients send;
* `Authorization: Basic base64(ANYNAME:TOKEN)` — the password is the token; for clients
  that only do HTTP auth from a URL or `~/.netrc` (wes-client 5.0 does not send its `--auth`
  header when it submits a run);
* the `akoflow_session` cookie — for the browser: `EventSource` cannot set headers, so the
  web view trades the token (read from the page's URL fragment, which no server ever sees)
  for this cookie once, at `POST /auth/session`. It is HttpOnly, SameSite=Strict, signed
  with a key derived from the full-access token (a new token voids every cookie), expires
  after `SESSION_SECONDS`, and is good for GET/HEAD only, so no cross-site form can change
  anything with it.

Read-only tokens (and every cookie) may GET and HEAD; anything else needs the full token
(403). Only the web view's static shell (`/`, `/ui/...`) answers without credentials: it
holds no data and fetches everything with the cookie.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from akoflow.server.tokens import Role, Tokens

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "akoflow_session"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD"})
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'none'")
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
]


def is_public(path: str, method: str) -> bool:
    """The static shell of the web view: no data, so no credentials."""
    return method in SAFE_METHODS and (path == "/" or path.startswith("/ui/"))


class Sessions:
    """Signed, expiring cookie values: `role.expiry.signature`."""

    def __init__(self, tokens: Tokens) -> None:
        self._key = hmac.new(tokens.admin.encode(), b"akoflow-session", hashlib.sha256).digest()

    def issue(self, role: Role, now: float | None = None) -> str:
        body = f"{role}.{int((now or time.time()) + SESSION_SECONDS)}"
        return f"{body}.{self._sign(body)}"

    def role_of(self, value: str, now: float | None = None) -> Role | None:
        role, _, rest = value.partition(".")
        expiry, _, sig = rest.partition(".")
        body = f"{role}.{expiry}"
        if not hmac.compare_digest(sig.encode(), self._sign(body).encode()):
            return None
        if not expiry.isdigit() or int(expiry) < (now or time.time()):
            return None
        return "admin" if role == "admin" else "read" if role == "read" else None

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()


def bearer_role(tokens: Tokens, header: str) -> Role | None:
    """The role an `Authorization` header value grants (Bearer or Basic), or None."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return tokens.role_of(value.strip())
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return tokens.role_of(decoded.partition(":")[2])
    return None


def _cookie(headers: dict[bytes, bytes], name: str) -> str | None:
    raw = headers.get(b"cookie", b"").decode("latin-1")
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class Guard:
    """ASGI middleware: credentials, the body cap, and security headers on every answer."""

    def __init__(self, app: ASGIApp, tokens: Tokens, max_body: int) -> None:
        self.app = app
        self.tokens = tokens
        self.sessions = Sessions(tokens)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        headers = dict(scope["headers"])
        method, path = scope["method"], scope["path"]
        if not is_public(path, method):
            role, via = self._who(headers)
            if role is None:
                await _error(send, 401, "missing or wrong token: send `Authorization: Bearer "
                             "TOKEN` (see `akoflow serve --print-token`)",
                             [(b"www-authenticate", b'Bearer realm="akoflow"')])
                return
            if method not in SAFE_METHODS and (role != "admin" or via != "header"):
                why = ("a read-only token" if role != "admin"
                       else "the browser session (send the token in an Authorization header)")
                await _error(send, 403, f"{method} needs the full-access token, not {why}")
                return
            scope.setdefault("state", {})["role"] = role
        answered, body = await self._body(headers, receive, send)
        if answered:
            return
        await self.app(scope, receive if body is None else _replay(body, receive), send)

    def _who(self, headers: dict[bytes, bytes]) -> tuple[Role | None, str]:
        auth = headers.get(b"authorization")
        if auth is not None:
            return bearer_role(self.tokens, auth.decode("latin-1")), "header"
        value = _cookie(headers, COOKIE)
        return (self.sessions.role_of(value) if value else None), "cookie"

    async def _body(self, headers: dict[bytes, bytes], receive: Receive, send: Send
                    ) -> tuple[bool, bytes | None]:
        """(answered already, the body read under the cap or None when none was sent).
        Reading it all first keeps the cap out of every route and parser."""
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _error(send, 413, f"request body over {self.max_body} bytes")
            return True, None
        if length in (None, b"0") and b"chunked" not in headers.get(b"transfer-encoding", b""):
            return False, None
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return True, None
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _error(send, 413, f"request body over {self.max_body} bytes")
                return True, None
            chunks.append(chunk)
            if not msg.get("more_body"):
                return False, b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            have = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in _HEADERS if k not in have]
            if b"cache-control" not in have:
                extra.append((b"cache-control", b"no-store"))
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped


async def _error(send: Send, status: int, msg: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"msg": msg, "status_code": status}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
