"""Session-scoped pytest fixtures for the real clusters.

Register them once for the whole suite in tests/conftest.py::

    pytest_plugins = ["tests.infra.fixtures"]

(a test module may also list it in its own ``pytest_plugins``; pytest registers a plugin module
once). Each fixture brings its service up at most once per session, reusing daemons that already
run. Not root outside CI → skipped; cannot start in CI → the test fails with the captured output.
"""

from __future__ import annotations

import pytest

from tests.infra import bring_up
from tests.infra.docker_fixtures import docker_daemon  # noqa: F401  (session fixture)
from tests.infra.sge import SgeCluster, ensure_sge
from tests.infra.slurm import SlurmCluster, ensure_slurm
from tests.infra.sshd import SshCluster, ensure_sshd


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """A running heterogeneous Slurm cluster (nodes ``small``/``big``, partitions
    ``debug``/``bigmem``) on this host."""
    return bring_up("slurm", ensure_slurm)


@pytest.fixture(scope="session")
def sge_cluster() -> SgeCluster:
    """A running Son of Grid Engine cell (queue ``all.q`` on this host, 2 slots)."""
    return bring_up("sge", ensure_sge)


@pytest.fixture(scope="session")
def ssh_cluster() -> SshCluster:
    """Two OpenSSH servers on loopback (the cluster's login node and a jump host) and the
    unprivileged cluster user ``akocluster`` (tests/infra/sshd.py)."""
    return bring_up("sshd", ensure_sshd)
