"""strace, which exact file lineage (akoflow/worker/tracing.py) needs wherever tasks run.

Installed from Debian when missing and we are root (CI); without root the lineage tests that
need it skip with the reason, and akoflow itself falls back to snapshots.
"""

from __future__ import annotations

import os
import shutil

from tests.infra._common import apt_install


def ensure_strace() -> str | None:
    """The strace binary, installing Debian's package as root if needed; None when absent."""
    found = shutil.which("strace")
    if found is None and os.geteuid() == 0:
        apt_install(["strace"])
        found = shutil.which("strace")
    return found
