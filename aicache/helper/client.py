"""The client side of the warm helper: hand a command to it, or start one for next time.

Imports only modules built into the interpreter, like ``wire`` and for the same reason.

``run`` returns None whenever the helper did not take the command (none running, another aicache version, a
descriptor that cannot be passed, turned off, stuck), before anything was read or written: the caller then runs
the command in-process and the user sees no difference except the time (and, for a stuck helper, one line).
"""

from __future__ import annotations

import _signal
import _socket
import os
import struct
import sys
import time

from aicache.helper import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
ROUTED = frozenset({"ask"})  # the commands worth a warm process: the ones on a user's or a script's hot path
_FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
_BROKEN = "aicache: the warm helper's process ended before the command finished (`aicache helper stop` resets it)"
# Seconds for the helper to take a command: it forks a child that says so within milliseconds, also with a few
# clients at once. One that does not is stuck (stopped, swapped out, deadlocked), and the command runs here;
# a command it has taken may then run as long as it needs.
ACCEPT_TIMEOUT = 0.5
_STUCK = (
    "aicache: the warm helper did not take the command within {:g} s; running it without the helper"
    " (`aicache helper stop` ends a stuck helper)"
)
STOP_GRACE = 3.0  # seconds a stuck helper gets to exit on SIGTERM before SIGKILL


class Stuck(Exception):
    """The helper did not take the request in time; it will not run it (it never got the client's ``GO``)."""


def wanted(argv: list[str]) -> bool:
    return bool(argv) and argv[0] in ROUTED and os.environ.get(wire.DISABLE_ENV) != "0"


def run(argv: list[str]) -> int | None:
    """Run ``aicache argv`` in the helper and return its exit code; None if the helper did not take it."""
    try:
        sock = connect(ACCEPT_TIMEOUT, stuck_on_timeout=True)
        if sock is None:
            return None
        try:
            if not _hand_over(sock, argv):
                return None
            return _wait(sock)
        finally:
            sock.close()
    except Stuck:
        print(_STUCK.format(ACCEPT_TIMEOUT), file=sys.stderr)
        return None


def connect(timeout: float | None = None, stuck_on_timeout: bool = False) -> _socket.socket | None:
    """A connection to this store's helper; None when none listens (or ``Stuck`` when its queue stays full)."""
    path = wire.socket_path()
    if path is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)  # blocks only when the helper's backlog is full: it has stopped accepting
        if peer_uid(sock) not in (None, os.getuid()):
            raise PermissionError("the helper socket belongs to another user")
    except TimeoutError:
        sock.close()
        if stuck_on_timeout:
            raise Stuck from None
        return None
    except OSError:
        sock.close()
        return None
    return sock


def peer_uid(sock: _socket.socket) -> int | None:
    option = getattr(_socket, "SO_PEERCRED", None)
    if option is None:
        return None  # not Linux: the private socket directory is the guard
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(_socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return int(uid)


def _hand_over(sock: _socket.socket, argv: list[str]) -> bool:
    """Send the request, then our stdio and directory once a child of the helper waits for them; True once the
    child owns the command."""
    umask = os.umask(0)
    os.umask(umask)
    request = {
        "op": "run",
        "argv": argv,
        "env": dict(os.environ),
        "umask": umask,
        "package": PACKAGE_DIR,
        "prefix": sys.prefix,
    }
    try:
        wire.send_request(sock, request, [])
    except TimeoutError:
        raise Stuck from None  # its socket buffer is full: it reads nothing
    except OSError:
        return False
    try:
        answer = sock.recv(1)
    except TimeoutError:
        raise Stuck from None  # closing the socket without GO: its child, if it ever forks one, runs nothing
    except OSError:
        return False  # the helper went away before taking the command: nothing ran
    if answer != wire.ACCEPTED:
        return False
    try:
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        wire.send_go(sock, [0, 1, 2, cwd])  # EBADF when a stdio descriptor is closed: the child then runs nothing
    except OSError:
        return False
    finally:
        os.close(cwd)
    sock.settimeout(None)
    return True


def _wait(sock: _socket.socket) -> int:
    """Forward signals to the child until it reports its exit code."""
    received: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        try:  # noqa: SIM105  (contextlib is an import this path does without)
            sock.sendall(wire.SIGNAL + bytes([signum]))
        except OSError:
            pass

    previous = {signum: _signal.signal(signum, forward) for signum in _FORWARDED}
    try:
        data = b""
        while True:
            chunk = sock.recv(64)
            if not chunk:
                break
            data += chunk
            at = data.find(wire.EXIT)
            if at >= 0 and len(data) > at + 1:
                return data[at + 1]
    except OSError:
        pass
    finally:
        for signum, handler in previous.items():
            _signal.signal(signum, handler)
    if received:
        return 128 + received[-1]  # the child ended on the signal we passed on, as this process would have
    print(_BROKEN, file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------------------------------------
# Starting, asking, stopping


def start_in_background() -> int | None:
    """Start a helper without waiting for it; its own lock makes a second one give way. Returns its pid."""
    devnull = os.devnull
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, devnull, os.O_WRONLY, 0),
    ]
    argv = [sys.executable, "-c", _SERVER_MAIN.format(root=os.path.dirname(PACKAGE_DIR))]
    try:
        return os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
    except OSError:
        return None


# The helper must import this very aicache (also from a source tree) and never a module from the directory it
# happened to start in, so the current directory's entry of sys.path is replaced by ours when ours is missing.
_SERVER_MAIN = """import sys
root = {root!r}
sys.path[0:1] = [] if root in sys.path[1:] else [root]
from aicache.helper.server import main
main()
"""


def query(op: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Send ``status`` or ``stop``; the helper's reply, or None when no helper answers."""
    sock = connect(timeout)
    if sock is None:
        return None
    try:
        wire.send_request(sock, {"op": op}, [])
        return wire.read_reply(sock)
    except (OSError, wire.WireError, ValueError, EOFError):
        return None
    finally:
        sock.close()


def wait_until_ready(seconds: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = query("status", timeout=1.0)
        if status is not None:
            return status
        time.sleep(0.05)
    return None


def lock_holder() -> int | None:
    """The pid of the helper holding this store's lock, answering or not; None when no process holds it.

    The lock is released by the kernel when its holder exits, so a held lock names a live process, and the
    holder wrote its pid into it right after taking it.
    """
    import fcntl

    path = wire.socket_path()
    if path is None:
        return None
    try:
        fd = os.open(wire.companion(path, ".lock"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        return None  # nobody holds it (our shared lock goes with the descriptor)
    finally:
        os.close(fd)


def end(pid: int, grace: float = STOP_GRACE) -> str:
    """End a helper that does not answer: SIGTERM (with SIGCONT, in case it was stopped), then SIGKILL after
    ``grace`` seconds. Returns the signal that ended it ("SIGTERM", "SIGKILL"), or "" when it was gone already.
    """
    try:
        os.kill(pid, _signal.SIGTERM)
        os.kill(pid, _signal.SIGCONT)  # a stopped process only acts on SIGTERM once it runs again
    except ProcessLookupError:
        return ""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return "SIGTERM"
        time.sleep(0.05)
    try:
        os.kill(pid, _signal.SIGKILL)
    except ProcessLookupError:
        return "SIGTERM"
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:  # bounded: a process in uninterruptible I/O ends later
        time.sleep(0.05)
    return "SIGKILL"


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs; a zombie (ended, not yet reaped by a parent we do not control) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True  # no /proc (macOS): kill(0) is the answer
