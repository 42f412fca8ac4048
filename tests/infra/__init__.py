"""Real scheduler infrastructure for integration tests (Slurm, Son of Grid Engine).

``tests.infra.slurm.ensure_slurm()`` and ``tests.infra.sge.ensure_sge()`` install, configure and
start a real cluster on this host (root only, Debian packages). The pytest glue is here:

* :func:`require_root_or_skip` — skip when not root outside CI; fail in CI (CI runs as root).
* :func:`bring_up` — call an ``ensure_*`` function with the same policy: in CI a service that
  cannot be brought up is a loud failure carrying the captured output, never a silent skip.

Session fixtures ``slurm_cluster`` and ``sge_cluster`` live in :mod:`tests.infra.fixtures`.
See tests/infra/README.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.infra._common import InfraError

__all__ = ["InfraError", "bring_up", "in_ci", "require_root_or_skip"]

T = TypeVar("T")


def in_ci() -> bool:
    """True when running under CI (``CI`` set to anything but empty/0/false/no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _infra_disabled() -> str | None:
    value = os.environ.get("AKOFLOW_SKIP_INFRA", "").strip()
    return value if value not in ("", "0") else None


def require_root_or_skip(service: str) -> None:
    """Skip (outside CI) when ``service`` cannot be started because we are not root.

    In CI the infrastructure is part of what is tested, so not being root there is a failure.
    ``AKOFLOW_SKIP_INFRA=1`` skips infra tests explicitly, even in CI.
    """
    if _infra_disabled():
        pytest.skip(f"{service}: AKOFLOW_SKIP_INFRA is set")
    if os.geteuid() == 0:
        return
    reason = f"{service}: needs root to install packages and start daemons"
    if in_ci():
        pytest.fail(f"{reason}, and CI must run infra tests as root", pytrace=False)
    pytest.skip(reason)


def bring_up(service: str, ensure: Callable[[], T]) -> T:
    """Run ``ensure()`` under the root/CI policy and return what it returns.

    Not root outside CI → skip. Failure to start in CI (or with ``AKOFLOW_REQUIRE_INFRA=1``)
    → ``pytest.fail`` with the captured output; outside CI → skip with the error text.
    """
    require_root_or_skip(service)
    try:
        return ensure()
    except (InfraError, OSError) as exc:
        message = f"{service} could not be brought up:\n{exc}"
        if in_ci() or os.environ.get("AKOFLOW_REQUIRE_INFRA", "") not in ("", "0"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
