"""One atomic-replace helper and one file lock (aicache/files.py), and nothing else rolls its own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aicache import files
from tests.conftest import ROOT


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def test_a_replaced_file_has_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "keys.json"
    target.write_text("old")
    os.chmod(target, 0o644)
    old_umask = os.umask(0)
    try:
        files.write_atomic(target, "new", mode=0o600)
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o600
    old_umask = os.umask(0o777)  # a umask that removes every bit: fchmod puts them back
    try:
        files.write_atomic(tmp_path / "hook", "#!/bin/sh\n", mode=0o755)
    finally:
        os.umask(old_umask)
    assert (tmp_path / "hook").stat().st_mode & 0o777 == 0o755
    assert leftovers(tmp_path) == []


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from aicache import files
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    files.write_atomic(Path(sys.argv[1]), b"x" * 100_000)
except OSError as exc:
    print(exc.errno)
"""


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    import errno

    target = tmp_path / "config.toml"
    target.write_text("# mine\nmodel = 'x'\n")
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(target)], env={"PYTHONPATH": str(ROOT)}, capture_output=True, check=True
    )
    assert done.stdout.decode().strip() == str(errno.EFBIG)
    assert target.read_text() == "# mine\nmodel = 'x'\n"
    assert leftovers(tmp_path) == []


def test_concurrent_writers_never_share_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(40):
                files.write_atomic(target, f"writer = {n}\nround = {i}\n" * 200)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_text() in {f"writer = {n}\nround = 39\n" * 200 for n in range(6)}  # one whole last write
    assert leftovers(tmp_path) == []


def test_replacing_renames_only_when_the_block_succeeds(tmp_path: Path) -> None:
    target = tmp_path / "index.hnsw"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), files.replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []
    with files.replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.stat().st_mode & 0o777 == 0o600
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == []


def test_the_lock_is_exclusive_and_dies_with_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "export.lock"
    with files.FileLock(path):
        assert not files.FileLock(path, blocking=False).acquire()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from aicache import files\n"
         "lock = files.FileLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); sys.stdin.read()",
         str(path)],
        env={"PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    assert not files.FileLock(path, blocking=False).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = files.FileLock(path, blocking=False)
    assert lock.acquire()  # the kernel released it with the process
    lock.release()


# Renames that move a damaged file aside, or keep a user's hook byte for byte, are not writes: everything that
# writes a file's content goes through aicache.files.
MOVES = {"aicache/db.py": 1, "aicache/semantic/index.py": 1, "aicache/hooks/install.py": 2}


def test_no_module_rolls_its_own_atomic_write_or_lock() -> None:
    found: dict[str, int] = {}
    for path in sorted((ROOT / "aicache").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative == "aicache/files.py":
            continue
        text = path.read_text(encoding="utf-8")
        if relative == "aicache/helper/client.py":
            # It only probes who holds the helper's lock, and imports nothing but built-in modules (its cost is
            # every warm ask's), so it cannot use aicache.files.
            text = text.replace("fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)", "")
        assert not re.search(r"\bflock\(|\bmkstemp\(|NamedTemporaryFile", text), relative
        if count := len(re.findall(r"os\.(?:replace|rename)\(", text)):
            found[relative] = count
    assert found == MOVES
