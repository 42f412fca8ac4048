"""One real `akoflow serve` per test module, on loopback, with its own manifest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service.served import Served, start_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("served")
    srv = start_server(base / "home")
    try:
        yield srv
    finally:
        srv.stop()
