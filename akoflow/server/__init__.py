"""The HTTP service (`akoflow serve`): AkôFlow's API, GA4GH WES, live events and a web view.

It is a client of the manifest beside the CLI, calling the same service functions: it never
runs a workflow itself (a submission starts a dispatcher exactly as `akoflow submit` does),
so workflows go on when it stops. Its web stack (FastAPI, uvicorn, python-multipart) is the
optional `serve` extra; this module imports none of it, so `missing()` can say what to
install before anything starts.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "pip install 'akoflow[serve]'"
_NEEDED = ("fastapi", "uvicorn", "multipart")


def missing() -> str | None:
    """None when the service can start, else the one-line reason naming what to install."""
    absent = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    return (f"the HTTP service needs {', '.join(absent)} (not installed): {INSTALL_HINT}")
