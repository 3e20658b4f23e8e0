"""Canonical JSON and versioned hashes: the identity of partitions and exact cache keys.

A key is ``k1:`` followed by the SHA-256 of the canonical JSON (sorted keys, compact separators, UTF-8) of
what it identifies. Changing anything here (the version, the canonical form, what goes into a partition)
invalidates every stored key, so bump ``KEY_VERSION`` when you do.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

KEY_VERSION = "k1"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key_number(value: float | int) -> float | int:
    """``value`` as a key holds it: a whole float as the int it equals, so ``0``, ``0.0`` and ``-0.0`` are one key.

    Towards int, not float: a float cannot hold every int (a ``seed`` of 2**53 + 1), so two different ints would
    become one key. Only keys use this; the value sent to the provider is the one given.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def versioned_hash(value: Any) -> str:
    digest = hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
    return f"{KEY_VERSION}:{digest}"


def content_hash(text: str) -> str:
    """Hash of piped or attached content, kept in partitions and episodes instead of the content."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
