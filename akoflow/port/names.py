"""Names as users write them, and the identifiers akoflow derives from them.

AkôFlow accepts any string as a workflow or activity name ("Echo Hello World"), and real
nf-core process names run past a hundred characters. Such a name must never reach a path, a
job name or a shell line as written, so everything that builds one of those uses `ident()`:
the name itself when it is already safe (names that were valid before keep their paths and
job names), else a sanitised prefix plus a digest of the whole name, which is stable across
runs and unique within a workflow. The name as written stays in the manifest, provenance,
webhooks, reports and the CLI.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

MAX_LABEL_LEN = 1000  # a workflow or activity name as written
MAX_IDENT_LEN = 100
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_PREFIX = 48


def check_label(value: str, what: str) -> str:
    """A workflow or activity name: any non-empty text up to 1,000 characters."""
    if not value or not value.strip():
        raise ValueError(f"{what} name is empty")
    if len(value) > MAX_LABEL_LEN:
        raise ValueError(f"{what} name is longer than {MAX_LABEL_LEN} characters")
    if "\x00" in value:
        raise ValueError(f"{what} name contains a NUL character")
    return value


@lru_cache(maxsize=65536)
def ident(name: str) -> str:
    """The `[A-Za-z0-9._-]` identifier of `name` for paths, job names and shell lines."""
    if _SAFE.match(name):
        return name
    base = _BAD.sub("_", name).strip("._-")[:_PREFIX].rstrip("._-") or "x"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{base}-{digest}"


def printable(text: str) -> str:
    """`text` with control characters (a newline in a name, say) escaped, for one line of
    terminal output."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)
