"""Canonical JSON and the transaction digest that edge and central must agree on.

The edge computes the digest over what it sends, central over what it stored, so comparing the two
proves every record arrived exactly once and unaltered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def payload_digest(record: Any) -> str:
    return hashlib.sha256(canonical_json(record)).hexdigest()


def summary_digest(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 over sorted (record id, payload digest) lines; duplicates count every time."""
    h = hashlib.sha256()
    for record_id, digest in sorted(entries):
        h.update(f"{record_id} {digest}\n".encode())
    return h.hexdigest()
