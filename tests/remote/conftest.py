"""Fixtures of the remote tests: a cluster side set up once per session (the venv installed
by `akoflow remote setup` into a fresh remote home), and a fresh laptop per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.sshd import SshCluster
from tests.remote.laptop import Laptop, make_laptop, remote_home


@pytest.fixture(scope="session")
def cluster_side(ssh_cluster: SshCluster, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[SshCluster]:
    """The cluster user's remote home, emptied, then set up by a real `remote setup`."""
    shutil.rmtree(remote_home(ssh_cluster), ignore_errors=True)
    lap = make_laptop(tmp_path_factory.mktemp("setup-laptop"), ssh_cluster)
    lap.site("boot", "paramiko")
    lap.ak("remote", "setup", "boot", check=True, timeout=600)
    yield ssh_cluster


@pytest.fixture
def laptop(cluster_side: SshCluster, tmp_path: Path) -> Laptop:
    return make_laptop(tmp_path, cluster_side)
