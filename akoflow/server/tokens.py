"""The service's bearer tokens: one full-access token and optional read-only ones.

They live in `$AKOFLOW_HOME/server/` (directory 0700, files 0600): `token` is made on first
start (or by `akoflow serve --print-token`), `readonly-tokens` holds one read-only token per
line (`akoflow serve --new-readonly-token`). On a shared login node loopback is shared with
every user, so the file's permissions are what keeps other users out. This module needs no
web library, so printing a token works without the `serve` extra.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["admin", "read"]
TOKEN_BYTES = 32


@dataclass(frozen=True)
class Tokens:
    admin: str
    readonly: tuple[str, ...] = ()

    def role_of(self, presented: str) -> Role | None:
        """The role a presented token grants (constant-time comparisons), or None."""
        if presented and hmac.compare_digest(presented.encode(), self.admin.encode()):
            return "admin"
        ok = False
        for t in self.readonly:
            ok |= bool(presented) and hmac.compare_digest(presented.encode(), t.encode())
        return "read" if ok else None


def server_dir(home: Path) -> Path:
    d = home / "server"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    return d


def _write_new(path: Path, text: str) -> bool:
    """Create `path` with mode 0600 holding `text`; False when it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return True


def admin_token(home: Path) -> str:
    """The full-access token, generated on first use."""
    path = server_dir(home) / "token"
    _write_new(path, secrets.token_urlsafe(TOKEN_BYTES))
    os.chmod(path, 0o600)
    token = path.read_text().strip()
    if len(token) < 16:
        raise ValueError(f"{path}: the token is shorter than 16 characters; delete the file "
                         "to have a new one made")
    return token


def new_readonly_token(home: Path) -> str:
    """Add a read-only token and return it."""
    path = server_dir(home) / "readonly-tokens"
    token = secrets.token_urlsafe(TOKEN_BYTES)
    if not _write_new(path, token):
        os.chmod(path, 0o600)
        with path.open("a") as fh:
            fh.write(token + "\n")
    return token


def load(home: Path) -> Tokens:
    ro_path = server_dir(home) / "readonly-tokens"
    readonly: tuple[str, ...] = ()
    if ro_path.exists():
        os.chmod(ro_path, 0o600)
        readonly = tuple(t.strip() for t in ro_path.read_text().splitlines()
                         if len(t.strip()) >= 16)
    return Tokens(admin_token(home), readonly)
