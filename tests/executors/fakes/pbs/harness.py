"""Test harness for the fake schedulers: PATH, state home and site profiles for one test, the
fake queue as the engine sees it, and a teardown that stops every job and the fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FAKES = Path(__file__).resolve().parent.parent
ENGINE = FAKES / "pbs" / "fakesched.py"


class FakeCluster:
    def __init__(self, kind: str, tmp: Path, extra_env: dict[str, str] | None = None) -> None:
        self.home = tmp / f"fake-{kind}"
        self.sites = tmp / "sites"
        self.sites.mkdir(exist_ok=True)
        self.env = {"PATH": f"{FAKES / kind}{os.pathsep}{os.environ['PATH']}",
                    "FAKESCHED_HOME": str(self.home), "AKOFLOW_SITES": str(self.sites),
                    "AKOFLOW_CHAIN_SPACING": "1", **(extra_env or {})}

    def site(self, name: str, text: str) -> None:
        (self.sites / f"{name}.yaml").write_text(text)

    def jobs(self) -> list[dict[str, Any]]:
        """Every unit (job or array element) with its name and engine state."""
        path = self.home / "state.json"
        if not path.exists():
            return []
        state = json.loads(path.read_text())
        return [{"name": j["name"], "id": u["uid"], "state": u["state"], **u}
                for j in state["jobs"].values() for u in j["units"].values()]

    def ended(self, name: str, timeout: float = 30) -> dict[str, Any]:
        """The unit named `name` once the fake server has reaped it: the engine learns of an
        end from the worker's result.json, which can come before the server's next tick."""
        self.wait_for(lambda: [u["state"] for u in self.jobs() if u["name"] == name] == ["done"],
                      timeout)
        [unit] = [u for u in self.jobs() if u["name"] == name]
        return unit

    def live(self, prefix: str) -> list[dict[str, Any]]:
        return [u for u in self.jobs() if u["name"].startswith(prefix) and u["state"] != "done"]

    def wait_for(self, check: Any, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while not check():
            assert time.time() < deadline, f"timed out; fake queue: {self.jobs()}"
            time.sleep(0.3)

    def shutdown(self) -> None:
        if self.home.exists():
            subprocess.run([sys.executable, str(ENGINE), "shutdown"], check=False,
                           env={**os.environ, **self.env}, timeout=60)
