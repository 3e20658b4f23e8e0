"""The store and the vector index under faults, at the library level: the nine cases numbered below.

Real SQLite files, real hnswlib, real processes killed with SIGKILL, real file size limits and a real
unprivileged user. The vectors are random (faults do not depend on meaning); children import their helpers from
test_index.py so parent and children build entries the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aicache import db, paths
from aicache.errors import StoreCorruptError
from aicache.semantic import index, tier
from tests.conftest import ROOT
from tests.test_index import MODEL, insert, stored_ids, unit

pytestmark = pytest.mark.slow

DIM = 384
NOBODY = 65534


def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AICACHE_HOME=str(home), HF_HUB_OFFLINE="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


def spawn(code: str, *args: str, **extra: str) -> subprocess.Popen[str]:
    home = Path(os.environ["AICACHE_HOME"])
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=child_env(home, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(code: str, *args: str, **extra: str) -> tuple[int, str, str]:
    proc = spawn(code, *args, **extra)
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err


def temp_files() -> list[Path]:
    return sorted(paths.data_dir().glob("index.hnsw.tmp-*"))


def assert_index_matches_store(conn: sqlite3.Connection, probes: dict[int, np.ndarray]) -> index.VectorIndex:
    """Every stored vector indexed exactly once, and each probe still finds itself."""
    opened = index.open_index(conn, MODEL, DIM)
    labels = opened.labels()
    assert labels == stored_ids(conn)
    assert opened.count == len(labels)  # no label twice, no live slot without a row
    for entry_id, vector in probes.items():
        assert opened.search(vector, 1)[0].entry_id == entry_id
    return opened


@pytest.fixture
def store(conn: sqlite3.Connection) -> dict[int, np.ndarray]:
    """400 indexed entries; returns ten of them as probes (id -> vector)."""
    vectors = unit(np.random.default_rng(11), 400, DIM)
    ids = insert(conn, "p", vectors)
    index.sync(conn, MODEL, force=True)
    return {ids[i]: vectors[i] for i in range(0, 400, 40)}


# ---------------------------------------------------------------------------------------------------------
# 1. kill -9 during an index save

SAVE_LOOP = """
    import sys
    import numpy as np
    from aicache import db
    from aicache.semantic import index
    from tests.test_index import MODEL, insert, unit
    conn = db.connect()
    rng = np.random.default_rng(int(sys.argv[1]))
    print("ready", flush=True)
    while True:
        insert(conn, "p", unit(rng, 1, 384))
        index.sync(conn, MODEL, force=True)
"""


def test_kill_during_index_save_loses_nothing(conn: sqlite3.Connection, store: dict[int, np.ndarray]) -> None:
    kills, mid_save = 16, 0
    for point in range(kills):
        proc = spawn(SAVE_LOOP, str(1000 + point))  # seeds unlike the store's: no duplicate vectors
        assert proc.stdout is not None and proc.stderr is not None
        if proc.stdout.readline() != "ready\n":
            proc.kill()
            pytest.fail(f"the saving child did not start: {proc.stderr.read()}")
        time.sleep(0.4 * point / kills)  # kill points spread over many save cycles
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mid_save += bool(temp_files())
        opened = assert_index_matches_store(conn, store)
        assert not opened.rebuilt  # the previous file, or the new one: never a damaged one
    assert mid_save, "no kill landed inside a save; the test did not test anything"
    index.sync(conn, MODEL, force=True)
    assert temp_files() == []  # the next writer clears what killed ones left


# ---------------------------------------------------------------------------------------------------------
# 2. kill -9 between the SQLite commit and the index save

GAP = """
    import os, signal, sys
    import numpy as np
    from aicache import db, paths
    from aicache.semantic import index
    from tests.test_index import MODEL, insert, unit
    conn = db.connect()
    vectors = unit(np.random.default_rng(5), 5, 384)
    stage = sys.argv[1]
    if stage == "committed, no save":
        insert(conn, "p", vectors)
        os.kill(os.getpid(), signal.SIGKILL)
    # The save's own steps, stopped between them: index.VectorIndex.save does these in this order.
    with index.WriterLock():
        loaded = index.open_index(conn, MODEL, 384, locked=True)
        insert(conn, "p", vectors)
        assert loaded.catch_up(conn)
        path = paths.index_path()
        temp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        record = loaded._write(temp)
        if stage == "file recorded, not renamed":
            index._commit_record(conn, record)
        else:  # the opposite order, which aicache never does: the file is in place but unrecorded
            os.replace(temp, path)
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("stage", ["committed, no save", "file recorded, not renamed", "renamed, not recorded"])
def test_kill_between_commit_and_save_is_replayed(
    conn: sqlite3.Connection, store: dict[int, np.ndarray], stage: str
) -> None:
    code, _out, err = run(GAP, stage)
    assert code == -signal.SIGKILL, err
    assert len(stored_ids(conn)) == 405
    opened = assert_index_matches_store(conn, store)
    assert opened.rebuilt == (stage == "renamed, not recorded")  # an unrecorded file cannot be trusted
    index.sync(conn, MODEL, force=True)
    assert temp_files() == []
    assert index.records(conn)[0].count - index.records(conn)[0].deleted == 405


# ---------------------------------------------------------------------------------------------------------
# 3. concurrent writers

WRITER = """
    import os, sys, time
    import numpy as np
    from aicache import config, db
    from aicache.semantic import tier
    from tests.test_index import insert, unit
    settings = config.load()
    model = tier.model_id(settings)
    conn = db.connect()
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.005)
    rng = np.random.default_rng(int(sys.argv[1]))
    for _ in range(25):
        insert(conn, "p", unit(rng, 1, 384), model=model)
        tier.index_new_entries(conn, settings)
"""


def test_concurrent_writers_lose_and_duplicate_nothing(conn: sqlite3.Connection, tmp_path: Path) -> None:
    from aicache import config

    model = tier.model_id(config.load())
    go = tmp_path / "go"
    procs = [spawn(WRITER, str(i), str(go)) for i in range(8)]
    time.sleep(1.0)  # let them all import and connect, then start at once
    go.touch()
    results = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, results
    assert all(err == "" for _, err in results), results  # never "database is locked"
    ids = stored_ids(conn, model)
    assert len(ids) == 200
    opened = index.open_index(conn, model, DIM)
    assert opened.labels() == ids and opened.count == 200
    record = index.records(conn)[0]
    assert (record.seq, record.count) == (index.log_head(conn), 200)  # the file itself is complete


# ---------------------------------------------------------------------------------------------------------
# 4. lookups while another process writes

READER = """
    import sys, time
    import numpy as np
    from aicache import db
    from aicache.semantic import index
    from tests.test_index import MODEL
    conn = db.connect()
    probe_id = int(sys.argv[1])
    probe = np.frombuffer(conn.execute("SELECT embedding FROM entries WHERE id = ?", (probe_id,)).fetchone()[0],
                          dtype=np.float32)
    loaded = index.open_index(conn, MODEL, 384)
    done, end = 0, time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        if done % 10 == 0 or not loaded.catch_up(conn):
            loaded = index.open_index(conn, MODEL, 384)  # a cold open, racing the writer's renames
        found = index.nearest(conn, probe, "p", MODEL, k=3, min_similarity=0.5, load=lambda: loaded, index=loaded)
        assert found.neighbours[0].entry_id == probe_id, found
        cold = index.nearest(conn, probe, "p", MODEL, k=3, min_similarity=0.5, load=lambda: loaded)
        assert cold.neighbours[0].entry_id == probe_id, cold
        done += 1
    print(done)
"""

BUSY_WRITER = """
    import sys, time
    import numpy as np
    from aicache import db
    from aicache.semantic import index
    from tests.test_index import MODEL, insert, unit
    conn = db.connect()
    rng = np.random.default_rng(9)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        insert(conn, "p", unit(rng, 3, 384))
        conn.execute("DELETE FROM entries WHERE id = (SELECT max(id) FROM entries) - 1")
        index.sync(conn, MODEL)
"""


def test_lookups_while_another_process_writes(conn: sqlite3.Connection, store: dict[int, np.ndarray]) -> None:
    probe_id = next(iter(store))
    reader, writer = spawn(READER, str(probe_id), "3"), spawn(BUSY_WRITER, "3")
    (lookups, reader_err), (_, writer_err) = reader.communicate(timeout=120), writer.communicate(timeout=120)
    assert (reader.returncode, writer.returncode) == (0, 0), (reader_err, writer_err)
    assert int(lookups) > 20
    assert len(stored_ids(conn)) > 400  # the writer did write meanwhile
    assert_index_matches_store(conn, store)


# ---------------------------------------------------------------------------------------------------------
# 5. another connection holds a write transaction

BLOCKED = """
    import json, time
    import numpy as np
    from aicache import config, db, paths
    from aicache.semantic import index, tier
    from aicache.errors import StoreBusyError
    from tests.test_index import MODEL, insert, unit
    conn = db.connect()
    actions = {
        "insert": lambda: insert(conn, "p", unit(np.random.default_rng(1), 1, 384)),
        "index save": lambda: index.sync(conn, MODEL, force=True),
        "remove": lambda: tier.remove_entries(conn, config.load(), [1]),
    }
    out = {}
    for name, action in actions.items():
        started = time.monotonic()
        try:
            action()
            out[name] = ["no error", 0.0]
        except StoreBusyError as exc:
            out[name] = [type(exc).__name__, time.monotonic() - started]
    out["temp files"] = [p.name for p in paths.data_dir().glob("index.hnsw.tmp-*")]
    print(json.dumps(out))
"""


def test_a_held_write_lock_makes_writers_wait_then_fail_by_name(
    conn: sqlite3.Connection, store: dict[int, np.ndarray]
) -> None:
    insert(conn, "p", unit(np.random.default_rng(2), 3, DIM))  # committed, not yet in the file: a save is due
    before = paths.index_path().read_bytes()
    holder = db.connect()
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, out, err = run(BLOCKED, AICACHE_BUSY_TIMEOUT_MS="300")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 0, err
    result = json.loads(out)
    for name in ("insert", "index save", "remove"):
        kind, waited = result[name]
        # waited for the busy timeout (a lower bound: a busy machine can lengthen a wait, not cut it)
        assert kind == "StoreBusyError" and waited >= 0.25, result
    assert result["temp files"] == []
    assert paths.index_path().read_bytes() == before
    assert_index_matches_store(conn, store)


def test_opening_a_new_store_waits_for_a_writer_before_switching_to_wal(
    aicache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite refuses the switch to WAL at once (no busy handler) while another connection holds a write lock."""
    path = paths.db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE held (x)")
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("ROLLBACK"))
    release.start()
    monkeypatch.setenv("AICACHE_BUSY_TIMEOUT_MS", "10000")
    try:
        opened = db.connect(path)
    finally:
        release.join()
        other.close()
    assert opened.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.store_id(opened)
    opened.close()


# ---------------------------------------------------------------------------------------------------------
# 6. corrupt index files


def _other_dimension(path: Path) -> bytes:
    import hnswlib

    other = hnswlib.Index(space="cosine", dim=8)
    other.init_index(max_elements=10, M=index.INDEX_M)
    other.add_items(unit(np.random.default_rng(0), 10, 8), list(range(10)))
    other.save_index(str(path))
    return path.read_bytes()


def _damage(path: Path, how: str) -> bytes:
    data = bytearray(path.read_bytes())
    header, links = 96, index.INDEX_M * 2 * 4 + 4
    if how == "empty":
        data = bytearray()
    elif how == "half":
        data = data[: len(data) // 2]
    elif how == "header count":
        data[16] ^= 0x40
    elif how == "link list":  # neighbour ids past the end: hnswlib would read out of bounds
        data[header : header + links] = b"\xff" * links
    elif how == "vector byte":
        data[header + links + 100] ^= 0x01
    elif how == "last byte":
        data[-1] ^= 0xFF
    elif how == "garbage":
        data = bytearray(np.random.default_rng(0).bytes(len(data)))
    elif how == "other dimension":
        return _other_dimension(path)
    path.write_bytes(bytes(data))
    return bytes(data)


DAMAGE = ["empty", "half", "header count", "link list", "vector byte", "last byte", "garbage", "other dimension"]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_index_is_moved_aside_rebuilt_and_reported_once(
    conn: sqlite3.Connection, store: dict[int, np.ndarray], how: str
) -> None:
    path = paths.index_path()
    damaged = _damage(path, how)
    first = assert_index_matches_store(conn, store)
    assert first.rebuilt
    (aside,) = paths.data_dir().glob("index.hnsw.corrupt-*")
    assert aside.read_bytes() == damaged  # kept for inspection, not deleted
    second = assert_index_matches_store(conn, store)
    assert not second.rebuilt  # told once: the repaired file is good


def test_a_writer_that_finds_a_damaged_index_reports_it_once(
    conn: sqlite3.Connection, store: dict[int, np.ndarray]
) -> None:
    from aicache import config

    settings = config.load()
    model = tier.model_id(settings)
    insert(conn, "q", unit(np.random.default_rng(4), 3, DIM), model=model)
    assert tier.index_new_entries(conn, settings) is False
    _damage(paths.index_path(), "link list")
    insert(conn, "q", unit(np.random.default_rng(5), 1, DIM), model=model)
    assert tier.index_new_entries(conn, settings) is True
    insert(conn, "q", unit(np.random.default_rng(6), 1, DIM), model=model)
    assert tier.index_new_entries(conn, settings) is False
    assert index.open_index(conn, model, DIM).labels() == stored_ids(conn, model)


# ---------------------------------------------------------------------------------------------------------
# 7. corrupt SQLite file


def _close_cleanly(conn: sqlite3.Connection) -> Path:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return paths.db_path()


def test_a_corrupt_database_is_moved_aside_never_replaced(conn: sqlite3.Connection) -> None:
    insert(conn, "p", unit(np.random.default_rng(1), 20, DIM))
    path = _close_cleanly(conn)
    data = bytearray(path.read_bytes())
    data[:100] = np.random.default_rng(0).bytes(100)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="moved to"):
        db.connect()
    assert not path.exists()
    (aside,) = paths.data_dir().glob("aicache.db.corrupt-*")
    assert aside.read_bytes() == bytes(data)


def test_a_second_quarantine_in_the_same_second_keeps_the_first(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _close_cleanly(conn)
    monkeypatch.setattr(time, "strftime", lambda *_: "20261204-235818")  # both in one second
    path.write_bytes(b"first damaged file")
    first = db.move_aside(path, "test")
    path.write_bytes(b"second damaged file")
    Path(str(path) + "-wal").write_bytes(b"second wal")
    second = db.move_aside(path, "test")
    assert first != second and not path.exists()
    assert first.read_bytes() == b"first damaged file" and second.read_bytes() == b"second damaged file"
    assert Path(str(second) + "-wal").read_bytes() == b"second wal"
    assert second.name == "aicache.db.corrupt-20261204-235818-2"


def test_a_database_with_damaged_pages_is_detected(conn: sqlite3.Connection) -> None:
    # connect() only catches a damaged header (a full check on every open would cost the hit path); damage
    # deeper in the file surfaces when a query reads it, and then quick_check runs and the file is moved aside.
    insert(conn, "p", unit(np.random.default_rng(1), 300, DIM))
    path = _close_cleanly(conn)
    data = bytearray(path.read_bytes())
    for offset in range(8192, len(data) - 4096, 4096 * 5):
        data[offset + 100 : offset + 600] = np.random.default_rng(offset).bytes(500)
    path.write_bytes(bytes(data))
    with pytest.raises(sqlite3.DatabaseError) as raised:
        db.connect().execute("SELECT * FROM entries ORDER BY partition_key").fetchall()
    assert db.is_corruption(raised.value)
    error = db.corruption_error(raised.value)
    assert isinstance(error, StoreCorruptError) and "moved to" in str(error)
    assert not path.exists()
    (aside,) = [p for p in paths.data_dir().glob("aicache.db.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert aside.read_bytes()[:4096] == bytes(data)[:4096]  # kept for inspection, never silently replaced


# ---------------------------------------------------------------------------------------------------------
# 8. disk full

FULL = """
    import json, resource, signal, sys
    from aicache import db, paths
    from aicache.semantic import index
    from aicache.errors import StoreError
    from tests.test_index import MODEL
    conn = db.connect()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    out = {}
    try:
        index.sync(conn, MODEL, force=True)
        out["index"] = "saved"
    except StoreError as exc:
        out["index"] = str(exc)
    try:
        with db.write_transaction(conn):
            conn.execute(
                "INSERT INTO entries (exact_key, partition_key, question, answer, created_at) VALUES (?, ?, ?, ?, 0)",
                ("too-big", "p", "q", "x" * (2 * limit)),
            )
        out["insert"] = "inserted"
    except StoreError as exc:
        out["insert"] = str(exc)
    out["temp files"] = [p.name for p in paths.data_dir().glob("index.hnsw.tmp-*")]
    print(json.dumps(out))
"""


def test_a_full_disk_keeps_the_old_index_and_rolls_back(conn: sqlite3.Connection, store: dict[int, np.ndarray]) -> None:
    insert(conn, "p", unit(np.random.default_rng(3), 4, DIM))  # pending: the child must write a new file
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before, record = paths.index_path().read_bytes(), index.records(conn)[0]
    code, out, err = run(FULL, str(len(before) // 2))
    assert code == 0, err
    result = json.loads(out)
    assert "disk is full" in result["index"] and "previous index is kept" in result["index"]
    assert result["insert"] != "inserted" and result["temp files"] == []
    assert paths.index_path().read_bytes() == before and index.records(conn)[0] == record
    assert conn.execute("SELECT count(*) FROM entries WHERE exact_key = 'too-big'").fetchone()[0] == 0
    assert_index_matches_store(conn, store)


# ---------------------------------------------------------------------------------------------------------
# 9. read-only data directory

READ_ONLY = """
    import json, os, sys
    import numpy as np
    import hnswlib  # imported before dropping privileges: the interpreter's own files may be root-only
    from aicache import db, paths
    from aicache.semantic import index
    from aicache.errors import StoreError
    from tests.test_index import MODEL, insert, unit
    spare = unit(np.random.default_rng(0), 1, 384)  # numpy.random loads more of the interpreter: do it now
    if sys.argv[1] == "drop":
        os.setgid(65534)
        os.setuid(65534)
    probes = json.loads(sys.argv[2])
    conn = db.connect()
    loaded = index.open_index(conn, MODEL, 384)
    out = {"rebuilt": loaded.rebuilt, "found": {}, "writable": os.access(paths.data_dir(), os.W_OK)}
    for partition, entry_id, exact_max in probes:  # exact_max 0: through the index, else a scan in SQLite
        blob = conn.execute("SELECT embedding FROM entries WHERE id = ?", (entry_id,)).fetchone()[0]
        vector = np.frombuffer(blob, dtype=np.float32)
        found = index.nearest(
            conn, vector, partition, MODEL, k=1, min_similarity=0.5, load=lambda: loaded, exact_max=exact_max
        )
        out["found"][str(entry_id)] = found.neighbours[0].entry_id
    for name, action in (("save", lambda: index.sync(conn, MODEL, force=True)),
                         ("insert", lambda: insert(conn, "big", spare))):
        try:
            action()
            out[name] = "written"
        except StoreError as exc:
            out[name] = str(exc)
    out["files"] = sorted(os.listdir(paths.data_dir()))
    print(json.dumps(out))
"""


@pytest.fixture
def read_only_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home outside pytest's root-only temp tree, so an unprivileged child can reach it."""
    if os.geteuid() == 0 and not hasattr(os, "setuid"):
        pytest.skip("running as root without os.setuid: cannot make a directory read-only for this process")
    home = Path(tempfile.mkdtemp(prefix="aicache-ro-", dir="/tmp"))
    home.chmod(0o755)
    monkeypatch.setenv("AICACHE_HOME", str(home))
    try:
        yield home
    finally:
        for path in (home, *home.rglob("*")):
            if not path.is_symlink():
                path.chmod(0o700)
        shutil.rmtree(home)


def _make_read_only(home: Path) -> str:
    """chmod data files 0400 and the data directory 0500; as root, hand it all to nobody and drop to nobody."""
    root_runs = os.geteuid() == 0
    for path in (home, *home.rglob("*")):
        if root_runs:
            os.chown(path, NOBODY, NOBODY)
    for path in paths.data_dir().iterdir():
        path.chmod(0o400)
    paths.data_dir().chmod(0o500)
    return "drop" if root_runs else "stay"


def test_a_read_only_data_directory_still_serves_lookups(read_only_home: Path) -> None:
    conn = db.connect()
    vectors = unit(np.random.default_rng(8), 283, DIM)
    big = insert(conn, "big", vectors[:250])
    small = insert(conn, "small", vectors[250:280])
    index.sync(conn, MODEL, force=True)
    late = insert(conn, "big", vectors[280:])  # committed after the last save: only in the log
    probes = json.dumps([["big", big[7], 0], ["small", small[3], 2000], ["big", late[1], 0]])
    mode = _make_read_only(read_only_home)  # the parent keeps its connection: the WAL files stay, as in real use
    try:
        code, out, err = run(READ_ONLY, mode, probes)
        assert code == 0, err
        first = json.loads(out)
        paths.index_path().unlink()  # and once more with no index file at all (root or owner may still delete)
        code, out, err = run(READ_ONLY, mode, probes)
        assert code == 0, err
        second = json.loads(out)
    finally:
        conn.close()
    for result in (first, second):
        assert result["found"] == {str(big[7]): big[7], str(small[3]): small[3], str(late[1]): late[1]}
        assert not result["rebuilt"]  # a missing or stale file is not damage
        assert result["writable"] is False  # really read-only for the child (not root's bypass)
        assert "not writable" in result["save"]
        assert "read-only" in result["insert"]
    assert "index.hnsw" not in second["files"] and not any(".tmp-" in name for name in second["files"])


def test_a_read_only_data_directory_without_wal_files_still_opens(read_only_home: Path) -> None:
    # After a clean shutdown the -wal and -shm files are gone; SQLite cannot recreate them in a read-only
    # directory, so the store is opened immutable: lookups work, writes fail clearly.
    conn = db.connect()
    vectors = unit(np.random.default_rng(9), 40, DIM)
    small = insert(conn, "small", vectors)
    index.sync(conn, MODEL, force=True)
    conn.close()
    assert not any(p.name.endswith(("-wal", "-shm")) for p in paths.data_dir().iterdir())
    mode = _make_read_only(read_only_home)
    code, out, err = run(READ_ONLY, mode, json.dumps([["small", small[5], 2000]]))
    assert code == 0, err
    result = json.loads(out)
    assert result["found"] == {str(small[5]): small[5]}
    assert result["writable"] is False
    assert "read-only" in result["insert"]
