"""The two ways aicache changes a file others may be reading: an atomic replace, and an exclusive lock.

**Replace.** A new file is written under a unique temporary name in the target's own directory (a rename is
only atomic within one file system), created with its final mode from the first byte (``O_EXCL``, then
``fchmod`` because the umask can only remove bits), flushed to disk, renamed over the target, and the directory
is flushed so the rename survives a crash. A reader, or a crash at any point, sees the old file or the new one,
never a mix, and a key or a prompt never sits in a file more open than the one it replaces. On any error the
temporary file is removed and the target is untouched.

**Lock.** ``flock`` on a companion file: held while the descriptor is open, released by the kernel when the
process dies, so a killed writer never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from aicache import paths

_TEMP_MARK = ".tmp-"


def temp_path(path: Path) -> Path:
    """A name next to ``path`` that no other process or thread will pick: the pid and random bits."""
    return path.with_name(f"{path.name}{_TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}")


def remove_stale_temps(path: Path) -> None:
    """Delete temporary files of ``path`` left by killed writers. Only safe while holding the file's lock."""
    for stale in path.parent.glob(f"{path.name}{_TEMP_MARK}*"):
        stale.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(path: Path, *, mode: int = 0o600) -> Iterator[Path]:
    """Yield a new, empty temporary file next to ``path`` for the caller to fill (by name, e.g. for a library
    that writes files itself); when the block ends without an error it is flushed and renamed over ``path``."""
    tmp = temp_path(path)
    try:
        os.close(_create(tmp, mode))
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    paths.fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8), atomically and durably."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = temp_path(path)
    try:
        fd = _create(tmp, mode)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    paths.fsync_dir(path.parent)


def move_into_place(source: Path, target: Path) -> None:
    """Rename a finished file (written by another library into a work directory on the same file system) over
    ``target``, durably: its bytes reach the disk before the rename, and the rename before this returns."""
    fd = os.open(source, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(source, target)
    paths.fsync_dir(target.parent)


def _create(tmp: Path, mode: int) -> int:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask can only remove bits; this also undoes one that removed ours
    except BaseException:
        os.close(fd)
        raise
    return fd


class FileLock:
    """An exclusive ``flock`` on ``path`` (created private if missing), as a context manager or by hand.

    ``acquire`` waits unless ``blocking`` is False, then returns False when another process holds it. The lock
    belongs to this object's descriptor: a second ``FileLock`` on the same file in the same process conflicts
    with the first, as a lock in another process would.
    """

    def __init__(self, path: Path, *, blocking: bool = True) -> None:
        self.path = path
        self.blocking = blocking
        self.fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock; the kernel does the same if the process dies
            self.fd = None

    def __enter__(self) -> FileLock:
        if not self.acquire():
            raise BlockingIOError(f"{self.path} is locked by another process")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
