"""A real headless Chromium for tests that must see what a browser shows.

``ensure_chromium()`` installs the Debian package once (``apt-get`` only when
``/usr/bin/chromium`` is missing; serialized with the other infra installers through the
shared apt lock). ``chromium()`` wraps it in the infra policy: already installed → used as is;
not root outside CI → skip; cannot install in CI → fail.

``open_page()`` loads a local file in a fresh headless browser and drives it over the Chrome
DevTools Protocol (``--remote-debugging-port=0``; the port is read from ``DevToolsActivePort``
in the private user-data-dir) with the ``websocket-client`` package. It records what a test
needs to judge a page: console messages and uncaught exceptions, log entries (failed loads,
CSP violations), every network request, JavaScript dialogs (an ``alert()`` means injected
script ran), the values of JavaScript expressions, and optionally a full-page screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.infra import bring_up, in_ci
from tests.infra._common import InfraError, apt_install

CHROMIUM = Path("/usr/bin/chromium")
# Fonts make screenshots readable; chromium itself only recommends them.
PACKAGES = ("chromium", "fonts-dejavu-core")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
)


def ensure_chromium() -> Path:
    """Install chromium if it is missing; return its path. Idempotent and cheap when present."""
    if not os.access(CHROMIUM, os.X_OK):
        apt_install(PACKAGES)
    if not os.access(CHROMIUM, os.X_OK):
        raise InfraError(f"apt-get installed {' '.join(PACKAGES)} but {CHROMIUM} is missing")
    return CHROMIUM


def chromium() -> Path:
    """The browser for a test, under the infra policy (see module docstring)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return bring_up("chromium", ensure_chromium)


def require_websocket_client() -> None:
    """The CDP client library: skip outside CI when absent, fail in CI (a dev extra)."""
    try:
        import websocket  # noqa: F401
    except ImportError:
        msg = "websocket-client is not installed (pip install websocket-client)"
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


@dataclass
class PageResult:
    """What the browser saw while loading one page."""

    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    exceptions: list[str] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (level, source, text)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: Path | None = None

    def errors(self) -> list[str]:
        """Console errors/warnings, uncaught exceptions and error log entries, as text."""
        out = [f"console.{lvl}: {txt}" for lvl, txt in self.console
               if lvl in ("error", "warning", "assert")]
        out += [f"exception: {e}" for e in self.exceptions]
        out += [f"log.{lvl} [{src}]: {txt}" for lvl, src, txt in self.log
                if lvl in ("error", "warning")]
        return out

    def foreign_requests(self) -> list[str]:
        """Requests for anything but the page's own file and inline data: URLs."""
        return [u for u in self.requests if not u.startswith(("data:", "file:", "about:"))]


class _Cdp:
    """A minimal CDP session multiplexer over one browser websocket (flattened sessions)."""

    def __init__(self, ws_url: str, timeout: float) -> None:
        import websocket

        self._ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self._ws.close()

    def send(self, method: str, params: Mapping[str, Any] | None = None,
             session: str | None = None, timeout: float = 30) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": dict(params or {})}
        if session:
            msg["sessionId"] = session
        self._ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._recv()
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"CDP {method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
        raise TimeoutError(f"CDP {method}: no reply in {timeout}s")

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        """Block until an event named ``method`` arrives (events seen so far count)."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev.get("method") == method:
                    return ev
            if time.monotonic() >= deadline:
                raise TimeoutError(f"CDP event {method} not seen in {timeout}s")
            self._recv()

    def _recv(self) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(self._ws.recv())
        if "method" in reply:
            self.events.append(reply)
            if reply["method"] == "Page.javascriptDialogOpening":
                # A dialog blocks the page until answered; answer without waiting for a reply.
                self._ws.send(json.dumps({
                    "id": next(self._ids), "method": "Page.handleJavaScriptDialog",
                    "params": {"accept": True}, "sessionId": reply.get("sessionId")}))
        return reply


@contextlib.contextmanager
def _browser(binary: Path, width: int, height: int) -> Iterator[tuple[str, Path]]:
    """Start headless chromium on a free debugging port; yield (browser ws url, its stderr)."""
    profile = Path(tempfile.mkdtemp(prefix="akoflow-chromium-"))
    log_path = profile.parent / f"{profile.name}.stderr"
    argv = [str(binary), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
            f"--window-size={width},{height}", "about:blank"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise InfraError(f"chromium did not open its debugging port "
                                 f"(exit {proc.poll()}):\n{log_path.read_text()[-4000:]}")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        yield f"ws://127.0.0.1:{port}{path}", log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        # Its helpers (zygote, renderers) share the session we started it in: end them too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)
        log_path.unlink(missing_ok=True)


def open_page(page: Path, *, expressions: Mapping[str, str] | None = None,
              screenshot: Path | None = None, width: int = 1280, height: int = 900,
              settle: float = 0.3, timeout: float = 60) -> PageResult:
    """Load ``page`` (a local file) in a new headless Chromium and report what happened.

    ``expressions`` maps names to JavaScript expressions evaluated after the load event;
    their JSON values land in ``PageResult.values``. ``screenshot`` saves a full-page PNG.
    """
    binary = chromium()
    require_websocket_client()
    result = PageResult()
    with _browser(binary, width, height) as (ws_url, _log):
        cdp = _Cdp(ws_url, timeout)
        try:
            target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = cdp.send("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                cdp.send(f"{domain}.enable", session=session)
            cdp.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
            cdp.wait_for("Page.loadEventFired", timeout)
            time.sleep(settle)
            for name, expr in (expressions or {}).items():
                reply = cdp.send("Runtime.evaluate", {"expression": expr,
                                                      "returnByValue": True}, session=session)
                if "exceptionDetails" in reply:
                    raise AssertionError(f"{name}: {reply['exceptionDetails']}")
                result.values[name] = reply["result"].get("value")
            if screenshot is not None:
                _screenshot(cdp, session, screenshot, width)
                result.screenshot = screenshot
        finally:
            cdp.close()
    _collect(cdp.events, result)
    return result


def _screenshot(cdp: _Cdp, session: str, out: Path, width: int) -> None:
    metrics = cdp.send("Page.getLayoutMetrics", session=session)
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    clip = {"x": 0, "y": 0, "width": max(width, int(size["width"])),
            "height": min(int(size["height"]), 16000), "scale": 1}
    shot = cdp.send("Page.captureScreenshot", {"format": "png", "clip": clip,
                                               "captureBeyondViewport": True},
                    session=session, timeout=60)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))


def _collect(events: list[dict[str, Any]], result: PageResult) -> None:
    for ev in events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in params.get("args", []))
            result.console.append((params.get("type", ""), text))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exc = details.get("exception", {})
            result.exceptions.append(str(exc.get("description") or details.get("text")))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            result.log.append((entry.get("level", ""), entry.get("source", ""),
                               entry.get("text", "")))
        elif method == "Network.requestWillBeSent":
            result.requests.append(params.get("request", {}).get("url", ""))
        elif method == "Page.javascriptDialogOpening":
            result.dialogs.append(f"{params.get('type')}: {params.get('message')}")


class LivePage:
    """A page left open in headless Chromium: evaluate JavaScript in it as time passes."""

    def __init__(self, cdp: _Cdp, session: str) -> None:
        self._cdp, self._session = cdp, session

    def evaluate(self, expression: str) -> Any:
        reply = self._cdp.send("Runtime.evaluate", {"expression": expression,
                                                    "returnByValue": True,
                                                    "awaitPromise": True},
                               session=self._session)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")


@contextlib.contextmanager
def live_page(url: str, *, width: int = 1280, height: int = 900, timeout: float = 60
              ) -> Iterator[tuple[LivePage, PageResult]]:
    """Open `url` (any URL, e.g. a local server's) and keep it open: yields the page and the
    result that collects console messages, exceptions and requests until the block ends."""
    binary = chromium()
    require_websocket_client()
    result = PageResult()
    with _browser(binary, width, height) as (ws_url, _log):
        cdp = _Cdp(ws_url, timeout)
        try:
            target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = cdp.send("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                cdp.send(f"{domain}.enable", session=session)
            cdp.send("Page.navigate", {"url": url}, session=session)
            cdp.wait_for("Page.loadEventFired", timeout)
            yield LivePage(cdp, session), result
        finally:
            cdp.close()
            _collect(cdp.events, result)
