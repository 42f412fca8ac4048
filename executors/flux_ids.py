"""Flux job ids (RFC 19): one 64-bit number, written in several forms.

akoflow stores a job under its F58 form (`ƒ…`, what Flux prints), so any spelling of one id
compares equal once canonical; argv carries the decimal form.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

F58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # RFC 19's alphabet
_DOTHEX = re.compile(r"^[0-9a-fA-F]{4}(\.[0-9a-fA-F]{4}){3}$")


def parse_job_id(text: str) -> int:
    """A Flux job id in F58 (`ƒ…` or ASCII `f…`), decimal, `0x` hex or dothex form."""
    t = text.strip()
    if t[:1] in ("ƒ", "f") and len(t) > 1 and all(c in F58 for c in t[1:]):
        value = 0
        for c in t[1:]:
            value = value * 58 + F58.index(c)
    elif t.isdigit():
        value = int(t)
    elif t.startswith("0x") and len(t) > 2 and all(c in "0123456789abcdefABCDEF" for c in t[2:]):
        value = int(t, 16)
    elif _DOTHEX.match(t):
        value = int(t.replace(".", ""), 16)
    else:
        raise ValueError(f"{text!r} is not a Flux job id")
    if value >= 2**64:
        raise ValueError(f"{text!r} is larger than a 64-bit Flux job id")
    return value


def f58(value: int) -> str:
    """RFC 19 encoding with the `ƒ` prefix Flux itself prints."""
    digits = ""
    while True:
        value, rem = divmod(value, 58)
        digits = F58[rem] + digits
        if value == 0:
            return "ƒ" + digits


def canonical_id(text: str) -> str:
    return f58(parse_job_id(text))


def decimal(job_ids: Sequence[str]) -> list[str]:
    """Ids for an argv: decimal, which every Flux command accepts in any locale."""
    if not job_ids:
        raise ValueError("no job ids given")
    return [str(parse_job_id(j)) for j in job_ids]
