"""One webhook POST with urllib: no new dependency, no redirects, never raises for the network.

Redirects are refused on purpose: urllib would turn a redirected POST into a body-less GET,
which a receiver would see as a different (empty) event. A 3xx is reported as a failure, so
the row is retried and the operator sees `HTTP 301` in `last_error`.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import Message
from typing import IO

_MAX_RESPONSE = 64 * 1024  # read (and discard) at most this much of a receiver's answer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
        headers: Message, newurl: str,
    ) -> urllib.request.Request | None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> str | None:
    """POST `body`; None on a 2xx answer, otherwise a one-line reason for `last_error`.

    `timeout` bounds connect and each socket read, so the caller passes what is left of its
    budget. Only http and https are allowed: urllib would happily "POST" to file:// or ftp://.
    """
    if not url.lower().startswith(("http://", "https://")):
        return f"unsupported webhook URL scheme: {url.split(':', 1)[0]!r}"
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=max(timeout, 0.001)) as response:
            response.read(_MAX_RESPONSE)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return f"connection failed: {exc.reason}"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None if 200 <= status < 300 else f"HTTP {status}"
