"""Fixtures for the webhook tests: a receiver on a free port, a manifest in tmp_path."""

from __future__ import annotations

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
