"""Reading piped input safely: bounded in memory, checked before any network call, decoded predictably.

Rules (documented in the README):
- at most ``limits.max_input_bytes`` bytes (default 1,000,000) are accepted; more is refused with a usage error
  before anything is sent, and no more than the limit plus one byte is ever read into memory;
- binary input (a NUL byte anywhere: git's own test, since text never holds one) is refused with a usage error
  before anything is sent: an image or an archive piped by mistake would otherwise be sent, and paid for, as
  thousands of replacement characters;
- text must be UTF-8; bytes that are not (CP1252 text) are replaced with U+FFFD and a warning is given, so the
  request still goes through and the user knows it was altered;
- a question given as an argument that holds lone surrogates (undecodable bytes in argv) is repaired the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from aicache.errors import UsageError


@dataclass(frozen=True)
class DecodedText:
    text: str
    warning: str | None = None


def read_limited(stream: BinaryIO, limit: int, what: str = "standard input") -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UsageError(
            f"{what} is larger than the {limit:,}-byte limit; nothing was sent "
            "(raise limits.max_input_bytes, or pipe less)"
        )
    return data


def decode(data: bytes, what: str = "standard input") -> DecodedText:
    nul = data.find(b"\0")
    if nul >= 0:
        raise UsageError(
            f"{what} looks binary (a NUL byte at offset {nul:,}); aicache sends text, and nothing was sent"
        )
    try:
        return DecodedText(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd")
        return DecodedText(
            text, f"{what} is not valid UTF-8 (first bad byte at {exc.start}); {bad} character(s) replaced"
        )


def repair_argument(text: str, what: str = "the question") -> DecodedText:
    """argv arrives with undecodable bytes as lone surrogates; they cannot be sent or stored as they are."""
    try:
        text.encode("utf-8")
        return DecodedText(text)
    except UnicodeEncodeError:
        fixed = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        fixed = fixed.encode("utf-8", "replace").decode("utf-8")
        return DecodedText(fixed, f"{what} is not valid UTF-8; undecodable characters replaced")
