"""One webhook POST with http.client: no new dependency, no redirects, never raises, and never
takes longer than the time it is given, whatever the receiver does.

Socket timeouts alone bound each connect, send and read, not their sum: a receiver answering
one byte per second keeps every read under any timeout and holds the caller for as long as it
likes. So a watchdog shuts the socket down when the time is up, which ends any blocked call at
once. (Name resolution happens before the socket exists and is bounded only by the system
resolver; webhook URLs on HPC sites are mostly addresses or local names.)

Redirects are refused on purpose: following one would turn the POST into a body-less GET, which
a receiver would see as a different (empty) event. A 3xx is reported as a failure, so the row
is retried and the operator sees `HTTP 301` in `last_error`.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from akoflow.spec.models import check_url

_MAX_RESPONSE = 64 * 1024  # read (and discard) at most this much of a receiver's answer


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> str | None:
    """POST `body`; None on a 2xx answer, otherwise a one-line reason for `last_error`.
    Returns within `timeout` seconds (plus name resolution)."""
    problem = check_url(url)
    if problem:
        return problem
    parts = urlsplit(url)
    timeout = max(timeout, 0.001)
    conn: http.client.HTTPConnection
    if parts.scheme.lower() == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    expired = threading.Event()
    watchdog = threading.Timer(timeout, _abort, (conn, expired))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        response = conn.getresponse()
        response.read(_MAX_RESPONSE)
        status = int(response.status)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set():
            return f"no complete answer within {timeout:.1f} s"
        return f"connection failed: {type(exc).__name__}: {exc}" if str(exc) else \
            f"connection failed: {type(exc).__name__}"
    finally:
        watchdog.cancel()
        conn.close()
    if expired.is_set():
        return f"no complete answer within {timeout:.1f} s"
    return None if 200 <= status < 300 else f"HTTP {status}"


def _abort(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    """The time is up: end whatever call is blocked on the connection's socket."""
    expired.set()
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
