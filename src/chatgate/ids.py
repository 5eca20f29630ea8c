"""Time-ordered identifiers with Humanloop's prefixes (``data_``, ``pr_``, ``sesh_``, ``config_``).

48 bits of milliseconds then 80 random bits, Crockford base32 (as ULID): ids sort by creation
time, which keeps the log table's primary-key index append-mostly.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(millis, 10)}{_encode(rand, 16)}"


LOG = "data"
PROJECT = "pr"
SESSION = "sesh"
CONFIG = "config"
ORG = "org"
KEY = "key"
