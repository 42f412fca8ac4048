"""Fixtures for the webhook tests: a receiver on a free port, a manifest in tmp_path."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from webhook_helpers import Receiver, free_port

from akoflow.manifest import Manifest


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver on a free port, not yet started (tests decide when it comes up)."""
    r = Receiver(free_port())
    yield r
    r.stop()


@pytest.fixture
def manifest(tmp_path: Path) -> Iterator[Manifest]:
    m = Manifest(tmp_path / "m.db")
    yield m
    m.close()


@pytest.fixture
def trickler() -> Iterator[str]:
    """Reads a request, then answers one byte per second, forever (a slow receiver)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(20)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000:
                if stop.wait(1.0):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/hook"
    stop.set()
    srv.close()
