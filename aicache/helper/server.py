"""The warm helper process: load once, then fork a child per command (see ``aicache.helper``).

Fork safety: the parent holds no store connection when it forks (every connection belongs to one child; its
own, to keep the vector index warm, is read-only and closed again), runs one thread, and loads onnxruntime
with a single thread, so a child inherits no lock held by a thread that does not exist in it.
``TOKENIZERS_PARALLELISM`` and ``OPENBLAS_NUM_THREADS`` are set before those libraries load for the same reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from aicache.files import FileLock
from aicache.helper import wire
from aicache.helper.client import PACKAGE_DIR, peer_uid

LOCK_ATTEMPTS = 30  # x 0.1 s: long enough for a helper that refused a request to shut down and let go
_REQUEST_TIMEOUT = 2.0  # a client sends its request as soon as it connects
_GO_TIMEOUT = 30.0
SKIPPED_LATE = "a client stopped waiting before its command was taken, and ran it itself; not run here"
_MAX_LOG = 256 * 1024


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    path = wire.socket_path()
    if path is None:
        sys.exit(1)
    lock = _take_lock(wire.companion(path, ".lock"))
    if lock is None:
        return  # another helper serves (or is starting to serve) this store
    log = Log(wire.companion(path, ".log"))
    try:
        from aicache import config

        settings = config.load()
        if not settings.get("helper.enabled", True):
            return
        started = time.monotonic()
        stamp = code_stamp()  # before loading: a file changed while loading must count as a change
        _preload(settings)
        idle_seconds = float(settings.get("helper.idle_minutes", 30)) * 60
        helper = Helper(path, lock, log, stamp, idle_seconds)
        helper.keep_index_warm(settings)
        log.write(f"started, pid {os.getpid()}, ready in {time.monotonic() - started:.2f} s")
        helper.serve()
    except Exception as exc:  # a helper that cannot start leaves the commands to run in-process
        log.write(f"stopped: {type(exc).__name__}: {exc}")
    finally:
        os.close(lock)


def _take_lock(path: str) -> int | None:
    """The lock's descriptor, held for the helper's life (and closed in each child), or None if another has it."""
    lock = FileLock(Path(path), blocking=False)
    for _ in range(LOCK_ATTEMPTS):
        if lock.acquire() and lock.fd is not None:
            # Our pid, for `aicache helper stop` when this process stops answering (client.lock_holder).
            os.ftruncate(lock.fd, 0)
            os.pwrite(lock.fd, f"{os.getpid()}\n".encode(), 0)
            return lock.fd
        time.sleep(0.1)
    return None


def _preload(settings: Any) -> None:
    """Import what a command imports and load what it loads, so each forked child finds it in memory."""
    import aicache.cli

    aicache.cli.command()  # Typer and every command module, and the Click command built from them
    from aicache import api, flow, prepare  # noqa: F401
    from aicache.hooks import gitinfo  # noqa: F401
    from aicache.providers import anthropic, command, http, openai  # noqa: F401
    from aicache.semantic import embeddings, judge, tier, verify  # noqa: F401

    hx = http.import_httpx()
    http.tls_context(hx)
    # Imported lazily on a miss (found by diffing sys.modules before and after a miss in a forked child):
    # httpx's transport loads httpcore, h11 and anyio on its first request; reading a key file, migrating,
    # parsing a config file and decoding an event stream load the rest. ~25 ms of every miss otherwise.
    import codecs
    import tomllib  # noqa: F401

    import anyio  # noqa: F401
    import h11  # noqa: F401
    import httpcore._sync.connection_pool
    import httpcore._sync.http11  # noqa: F401

    from aicache import credentials, migrations  # noqa: F401

    codecs.getincrementaldecoder("utf-8-sig")
    import rich.console  # answers are rendered on a terminal
    import rich.markdown  # noqa: F401

    if settings.get("cache.semantic", True):
        import hnswlib  # noqa: F401

        verify.load_lexicon()
        _load_embedder(settings)
        _load_decision(settings)
    os.chdir("/")  # hold no user directory open


Stamp = tuple[tuple[str, int, int, int, int], ...]


def code_stamp(package_dir: str = PACKAGE_DIR) -> Stamp:
    """Name, size, mtime, ctime and inode of every file of the package: a change means this helper runs old code.

    The mtime alone can be put back (``touch -d``, ``cp -p``, a checkout tool), so a same-size edit would go
    unseen; the ctime moves on every write and every change of the mtime and cannot be set from user space, and
    the inode changes when an editor or an installer replaces the file. All come from the ``stat`` the check
    makes anyway: hashing the files instead would read the whole package on every request.
    """
    stamp = []
    for directory, subdirs, files in os.walk(package_dir):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(directory, name)
            info = os.stat(path)
            stamp.append((path, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino))
    return tuple(stamp)


class Log:
    """A few lines about starts, stops and failures; the helper has no terminal to print them on."""

    def __init__(self, path: str) -> None:
        self.path = path
        with contextlib.suppress(OSError):
            if os.stat(path).st_size > _MAX_LOG:
                os.unlink(path)

    def write(self, line: str) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n".encode())
            finally:
                os.close(fd)


class Helper:
    """The accept loop: answers ``status`` and ``stop`` itself, forks a child for each ``run`` it accepts."""

    def __init__(self, path: str, lock: int, log: Log, stamp: Stamp, idle_seconds: float) -> None:
        self.path = path
        self.lock = lock
        self.log = log
        self.idle_seconds = idle_seconds
        self.stamp = stamp
        self.started = time.time()
        self.served = 0
        self.index_vectors: int | None = None
        self.stopping = False
        self.listener = self._listen()

    def _listen(self) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by a helper that was killed; the lock says none is running
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(64)
        listener.settimeout(self.idle_seconds)
        self.inode = os.stat(self.path).st_ino
        return listener

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        reason = "stopped"
        try:
            while not self.stopping:
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    reason = f"idle for {self.idle_seconds / 60:g} min"
                    break
                with conn:
                    self._handle(conn)
        finally:
            self._close()
            self.log.write(f"{reason}, pid {os.getpid()}, served {self.served}")

    def _close(self) -> None:
        # Unlink only our own socket: a newer helper may already listen at the same path.
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        self.listener.close()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(_REQUEST_TIMEOUT)
        try:
            if peer_uid(conn) not in (None, os.getuid()):
                return
            message, fds = wire.receive_request(conn)
        except (OSError, wire.WireError):
            return
        try:
            op = message.get("op")
            if op == "run":
                self._run(conn, message)
            elif op in ("status", "stop"):
                self.stopping = op == "stop"
                conn.sendall(wire.encode(self.status()))
        except OSError:
            pass
        finally:
            for fd in fds:
                os.close(fd)

    def status(self) -> dict[str, Any]:
        from aicache import __version__

        return {
            "pid": os.getpid(),
            "version": __version__,
            "socket": self.path,
            "uptime_s": round(time.time() - self.started, 1),
            "served": self.served,
            "rss_mb": _rss_mb(),
            "idle_minutes": self.idle_seconds / 60,
            "index_vectors": self.index_vectors,
        }

    def _run(self, conn: socket.socket, message: dict[str, Any]) -> None:
        settings, refusal = None, self._refusal(message)
        if refusal is None:
            settings, refusal = self._settings()
        if settings is None or refusal is not None:
            conn.sendall(wire.REFUSED)
            self.log.write(f"left a command to its client: {refusal}" + ("; stopping" if self.stopping else ""))
            return
        if os.fork() == 0:
            _child(conn, message, (self.listener.fileno(), self.lock), self.log)
        self.served += 1
        # Both while the child works, never before the fork: a client waits only briefly for its command to be
        # taken. Once a command has exported the model, later children find it loaded; and the next child
        # finds the index up to date.
        _load_embedder(settings)
        self.keep_index_warm(settings)

    def keep_index_warm(self, settings: Any) -> None:
        """Hold the store's vector index for the children once it is large enough that they would load it."""
        from aicache.semantic import tier

        try:
            self.index_vectors = tier.keep_index_warm(settings)
        except Exception as exc:  # a store in trouble: the children meet it themselves and tell their user
            self.index_vectors = None
            tier.forget_indexes()
            self.log.write(f"not keeping the vector index: {type(exc).__name__}: {exc}")

    def _refusal(self, message: dict[str, Any]) -> str | None:
        """Why this helper should not run this request (the client then runs it itself), or None."""
        if code_stamp() != self.stamp:  # first: a newer client's request may look malformed to old code
            self.stopping = True
            return "aicache was changed on disk since this helper started"
        if message.get("package") != PACKAGE_DIR or message.get("prefix") != sys.prefix:
            return "another aicache installation"
        if not isinstance(message.get("argv"), list) or not isinstance(message.get("env"), dict):
            return "malformed request"
        return None

    def _settings(self) -> tuple[Any, str | None]:
        """The settings now, or why no command should run here (the config can change while the helper runs)."""
        from aicache import config
        from aicache.errors import ConfigError

        try:
            settings = config.load()
        except ConfigError:
            return None, "the config file cannot be read"  # the in-process run reports it properly
        if not settings.get("helper.enabled", True):
            self.stopping = True
            return None, "helper.enabled is false"
        return settings, None


def _load_embedder(settings: Any) -> None:
    """The model with one onnxruntime thread (fork-safe), if the semantic tier is on and the model exported."""
    from aicache.semantic import embeddings

    if settings.get("cache.semantic", True) and embeddings.is_prepared(settings):
        embeddings.get_embedder(settings, threads=1)


def _load_decision(settings: Any) -> None:
    """The hit decision's model (its weights, or its exported session), if it needs no preparation first."""
    from aicache.errors import ConfigError
    from aicache.semantic import decide, decision

    if settings.get("decision.kind", decide.DEFAULT_KIND) == "model" and decision.is_prepared(settings):
        with contextlib.suppress(ConfigError):  # a broken model directory is reported by the command itself
            decide.load(settings)


def _rss_mb() -> float:
    """Resident memory now (not ru_maxrss, which Linux carries over from the process that started us)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------------------------------------------------
# The child: becomes the client's command


def _child(conn: socket.socket, message: dict[str, Any], inherited: tuple[int, ...], log: Log) -> NoReturn:
    code = 1
    try:
        for fd in inherited:
            os.close(fd)  # the listener and the lock stay with the parent
        _restore_signals()
        fds = _client_says_go(conn)
        if fds is None:
            # The client stopped waiting and runs the command itself (or is gone): running it here too would
            # run it twice. Nothing was read or written yet.
            log.write(f"{SKIPPED_LATE}, pid {os.getpid()}")
            os._exit(0)
        _take_over(message, fds)
        conn.settimeout(None)
        _forward_signals(conn)
        code = _run_cli(message["argv"])
    except BaseException as exc:  # whatever happens, the client must hear an exit code
        log.write(f"a command failed in the helper: {type(exc).__name__}: {exc}")
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(wire.EXIT + bytes([code & 0xFF]))
        os._exit(code & 0xFF)


def _client_says_go(conn: socket.socket) -> list[int] | None:
    """Say ``ACCEPTED``; the client's stdin, stdout, stderr and directory, sent with its ``GO``, or None if it
    stopped waiting (it closed the connection: sending fails or reading ends)."""
    conn.settimeout(_GO_TIMEOUT)  # the client answers at once; the bound only ends a child whose client hangs
    try:
        conn.sendall(wire.ACCEPTED)
        return wire.receive_go(conn)
    except OSError:
        return None


def _restore_signals() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # or subprocess could not wait for git or a wrapped CLI
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _take_over(message: dict[str, Any], fds: list[int]) -> None:
    """Become the client: its stdio, directory, environment and umask."""
    stdin, stdout, stderr, cwd = fds
    for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
        os.dup2(fd, target)
    os.fchdir(cwd)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.environ.clear()
    os.environ.update(message["env"])
    os.umask(int(message["umask"]))
    _fresh_stdio()


def _fresh_stdio() -> None:
    """New stdio objects: buffering depends on what the descriptors are now (a terminal, a pipe, a file)."""
    encoding, errors = sys.stdout.encoding, sys.stdout.errors
    sys.stdin = open(0, encoding=sys.stdin.encoding, errors=sys.stdin.errors, closefd=False)  # noqa: SIM115
    sys.stdout = open(  # noqa: SIM115
        1, "w", encoding=encoding, errors=errors, closefd=False, buffering=1 if os.isatty(1) else -1
    )
    sys.stderr = open(  # noqa: SIM115
        2, "w", encoding=encoding, errors="backslashreplace", closefd=False, buffering=1
    )


def _forward_signals(conn: socket.socket) -> None:
    """Deliver the signals the client passes on to this process's main thread, as the terminal would have.

    When the client disappears (killed), the command is terminated as it would have been with it.
    """
    main_thread = threading.main_thread().ident
    assert main_thread is not None
    allowed = {int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGHUP)}

    def watch() -> None:
        pending = b""
        while True:
            try:
                chunk = conn.recv(64)
            except OSError:
                chunk = b""
            if not chunk:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            pending += chunk
            while len(pending) >= 2:
                kind, number, pending = pending[:1], pending[1], pending[2:]
                if kind == wire.SIGNAL and number in allowed:
                    signal.pthread_kill(main_thread, number)

    signal.pthread_sigmask(signal.SIG_BLOCK, allowed)  # the watcher inherits the mask: signals go to main
    try:
        threading.Thread(target=watch, name="aicache-signals", daemon=True).start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, allowed)


def _run_cli(argv: list[str]) -> int:
    from aicache.cli import main

    sys.argv = ["aicache", *argv]
    try:
        main()
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        return 130
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints the message and exits 1
    return 1


if __name__ == "__main__":
    main()
