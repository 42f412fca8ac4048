"""Session fixture ``docker_daemon``: a running dockerd with the ``akoflow-busybox:test`` image.

To be registered with the other infra fixtures (tests/infra/fixtures.py); until then a test
module imports it: ``from tests.infra.docker_fixtures import docker_daemon  # noqa: F401``.
Not root outside CI → skipped; dockerd cannot start in CI (``CI=true``) → the test fails with
the daemon's log tail (the ``bring_up`` policy of tests/infra/__init__.py).
"""

from __future__ import annotations

import pytest

from tests.infra import bring_up
from tests.infra.docker import DockerHost, ensure_docker


@pytest.fixture(scope="session")
def docker_daemon() -> DockerHost:
    """dockerd on this host (installed and started if needed) and the local test image."""
    return bring_up("docker", ensure_docker)
