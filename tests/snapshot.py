"""``snapshot(paths)``: everything under some directories, to prove that a command wrote nothing.

Two snapshots are equal when the same files, directories and symlinks exist with the same bytes, targets and
permission bits. Times are left out: reading a file may change its access time, and that is not a write.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

Entry = tuple[str, int, bytes | str | None]


def snapshot(paths: Iterable[Path]) -> dict[str, Entry]:
    """Map each path under ``paths`` (recursively, the roots included) to (kind, mode, bytes or link target)."""
    found: dict[str, Entry] = {}
    for root in paths:
        if not os.path.lexists(root):
            found[str(root)] = ("missing", 0, None)
            continue
        stack = [Path(root)]
        while stack:
            path = stack.pop()
            info = path.lstat()
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                found[str(path)] = ("link", mode, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[str(path)] = ("dir", mode, None)
                stack.extend(sorted(path.iterdir()))
            else:
                found[str(path)] = ("file", mode, path.read_bytes())
    return found


def differences(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """What changed between two snapshots, one line per path (empty when nothing did)."""
    lines = []
    for path in sorted(before.keys() | after.keys()):
        if before.get(path) != after.get(path):
            was, now = before.get(path), after.get(path)
            lines.append(f"{path}: {was[0] if was else 'absent'} -> {now[0] if now else 'absent'}")
    return lines
