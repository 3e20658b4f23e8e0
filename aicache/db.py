"""Open the SQLite store: the source of truth for entries, vectors and episodes.

Reads use plain ``sqlite3`` because ``sqlite_utils`` imports numpy (0.1-0.2 s), which the exact-hit path cannot
afford; sqlite-utils runs migrations, full-text search and reports. Every connection uses WAL and a busy
timeout; writes go through ``write_transaction`` (``BEGIN IMMEDIATE``) so concurrent shells, pipes and hooks
queue for the write lock instead of failing half-way with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aicache import paths
from aicache.errors import StoreBusyError, StoreCorruptError, StoreError

MAX_INTEGER = 2**63 - 1
"""The largest SQLite INTEGER, so the largest row id; binding a larger Python int raises ``OverflowError``."""


def is_row_id(value: int) -> bool:
    """Whether ``value`` can name a row: an id beyond SQLite's INTEGER names none (``show 99999999999999999999``)."""
    return 0 < value <= MAX_INTEGER


def busy_timeout_ms() -> int:
    """How long a writer waits for the lock; read per connection (a warm helper serves many environments)."""
    return int(os.environ.get("AICACHE_BUSY_TIMEOUT_MS", "30000"))


def _create_private(path: Path) -> None:
    """Create the database file with mode 0600 before SQLite does, so it is never world-readable."""
    paths.ensure_private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "file is encrypted" in text


def move_aside(path: Path, reason: str) -> Path:
    """Keep a damaged database for inspection instead of deleting it; the user is told by the caller.

    The name carries the time to the second, and a number after it when a file of that name (or its -wal or
    -shm) is already there, so a second quarantine in the same second never overwrites the first.
    """
    stamp = f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
    aside, number = path.with_name(stamp), 1
    while any(Path(str(aside) + suffix).exists() for suffix in ("", "-wal", "-shm")):
        number += 1
        aside = path.with_name(f"{stamp}-{number}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(path) + suffix)
        if source.exists():
            os.replace(source, Path(str(aside) + suffix))
    return aside


def connect(path: Path | None = None, *, readonly: bool = False, move_damaged: bool = True) -> sqlite3.Connection:
    """Open the store (creating it unless ``readonly``) and bring its schema up to date.

    A file whose header is damaged is moved aside (left in place when not ``move_damaged``: see ``reading``) and
    ``StoreCorruptError`` raised; deeper damage is caught by ``corruption_error`` when a query meets it. A corrupt
    store is never silently replaced by an empty one.
    """
    path = path or paths.db_path()
    if readonly:
        if not path.exists():
            raise StoreError(f"no cache database at {path}")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_timeout_ms() / 1000)
    else:
        if not path.exists():
            _create_private(path)
        conn = sqlite3.connect(path, timeout=busy_timeout_ms() / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
        if not readonly:
            use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        from aicache import migrations

        migrations.ensure_current(conn, readonly=readonly)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if is_corruption(exc):
            if not move_damaged:
                raise damaged_error(exc, path) from None
            aside = move_aside(path, str(exc))
            raise StoreCorruptError(
                f"the cache database was corrupt ({exc}); moved to {aside}; a new one is created on the next run"
            ) from None
        if not os.access(path.parent, os.W_OK) and path.exists():
            return _connect_immutable(path)
        raise translate(exc) from None
    return conn


@contextmanager
def reading() -> Iterator[sqlite3.Connection]:
    """The store for a command that only reads (``log``, ``show``, ``stats``, ``why``, ``proposals list``).

    Damage is reported, never moved aside: such a command has nothing to write, and a store whose damage lies in
    a few pages still answers ``log`` and ``show`` for the rest, which moving it aside would take from view. A
    command that writes (``ask``, ``feedback``, ``learn``) moves it aside when it meets the damage, as it cannot
    go on without a store it can write.
    """
    try:
        yield connect(move_damaged=False)
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            raise
        raise damaged_error(exc) from None


def damaged_error(exc: sqlite3.DatabaseError, path: Path | None = None) -> StoreCorruptError:
    """What a command that only reads says of a damaged store it leaves in place."""
    path = path or paths.db_path()
    return StoreCorruptError(
        f"the cache database {path} is damaged ({exc}); left in place, as this command only reads: the next "
        "command that writes and meets the damage (ask, feedback) moves it aside, or move it aside yourself"
    )


def use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (a no-op once it is), retrying while another process holds the lock.

    The switch needs an exclusive lock, and while another connection holds a lock on the file (as when several
    processes create the store together) SQLite may answer SQLITE_BUSY at once instead of calling the busy
    handler (waiting could deadlock), so the busy timeout alone does not cover it: the switch is retried until
    that timeout has passed.
    """
    deadline = time.monotonic() + busy_timeout_ms() / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def store_id(conn: sqlite3.Connection) -> str:
    """The random id given to this database file when it was created (or first migrated)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'store.id'").fetchone()
    return str(row[0]) if row else ""


def _connect_immutable(path: Path) -> sqlite3.Connection:
    """Read a store whose directory is read-only: hits still work, every write fails as read-only.

    A WAL database needs its -shm file to be read; in a read-only directory SQLite cannot create it, so the
    file is opened as immutable (no locking, no WAL). Nobody can write through a read-only directory, so
    there is nothing to lock against.
    """
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        from aicache import migrations

        migrations.ensure_current(conn, readonly=True)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise translate(exc) from None
    return conn


def check_or_move_aside(path: Path | None = None) -> Path | None:
    """Run ``PRAGMA quick_check``; a database that fails it is moved aside and its new path returned.

    A full check reads every page, so it is not run on every open (the exact-hit path is measured in
    milliseconds): ``connect`` catches a damaged header, and the CLI runs this check whenever SQLite reports
    corruption in the middle of a command.
    """
    path = path or paths.db_path()
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = [row[0] for row in conn.execute("PRAGMA quick_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        result = [str(exc)]
    if result == ["ok"]:
        return None
    return move_aside(path, "; ".join(result[:3]))


def corruption_error(exc: sqlite3.DatabaseError) -> StoreError:
    """What to tell the user when SQLite reports corruption during a command."""
    aside = check_or_move_aside()
    if aside is None:
        return StoreError(f"cache database error: {exc} (quick_check found no damage; try again)")
    return StoreCorruptError(
        f"the cache database was corrupt ({exc}); moved to {aside}; a new one is created on the next run"
    )


def translate(exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreBusyError(f"the cache database stayed locked for {busy_timeout_ms() / 1000:g} s: {text}")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"the cache database is read-only: {text}")
    if "disk" in text and "full" in text:
        return StoreError(f"the disk is full: {text}")
    return StoreError(f"cache database error: {text}")


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error and re-raised as ``StoreError``."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise translate(exc) from None
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise translate(exc) from None
        raise
