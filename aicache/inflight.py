"""Single flight: identical misses at the same time pay the provider once.

Parallel git hooks, ``xargs -P`` and scripts often ask the same question at once. Without this, each process
misses the exact tier and calls the provider. With it, the first one to miss holds a lock named after the exact
key (``inflight/<hash>.lock`` in the data directory, ``flock``) while it asks and stores; the others wait for
it, bounded, then look the key up again and serve the stored answer as an exact hit. Whoever takes the lock looks
again, waiting or not: a process that missed just before the first one stored, and took the lock just after it
was released, would otherwise ask again. When the first one fails
(provider error, answer cut short, Ctrl-C, killed: the kernel releases the lock of a dead process), the next
waiter finds nothing stored and asks the provider itself, holding the lock in turn. A waiter that reaches its
bound asks without the lock: a hung process never blocks another for longer than that.

The holder removes the lock file before it lets go, so files do not pile up; a waiter that then locks the
removed file sees that its inode is no longer the one at the path and opens the path again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from aicache import files, paths

POLL = 0.05  # seconds between attempts while another process holds the key


def lock_dir() -> Path:
    return paths.data_dir() / "inflight"


@contextlib.contextmanager
def single_flight(key: str, wait: float, on_wait: Callable[[], None]) -> Iterator[None]:
    """Hold ``key``'s flight for the body, which must look ``key`` up again before asking: another process may
    have stored its answer since the caller's lookup, whether or not this one waited for it. ``on_wait`` is called
    once, when this process starts waiting.

    Where no lock can be made (a read-only or full data directory), the body runs without one.
    """
    fd = _acquire(key, wait, on_wait)
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(_path(key))  # before unlocking: whoever opens the path next makes a new file
            os.close(fd)


def _path(key: str) -> Path:
    return lock_dir() / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}.lock"


def _acquire(key: str, wait: float, on_wait: Callable[[], None]) -> int | None:
    path = _path(key)
    try:
        paths.ensure_private_dir(path.parent)
    except OSError:
        return None
    deadline = time.monotonic() + wait
    waited = False
    while True:
        lock = files.FileLock(path, blocking=False)
        try:
            held = lock.acquire()
        except OSError:
            return None
        if not held:
            if not waited:
                waited = True
                on_wait()
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL)
            continue
        fd = lock.fd
        assert fd is not None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except OSError:
            current = False
        if current:
            return fd
        os.close(fd)  # the file the previous holder removed: a lock on it excludes nobody
