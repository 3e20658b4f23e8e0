"""Where the helper listens and how a request travels. The client imports this on every ``ask``, so it uses
only modules built into the interpreter: ``socket``, ``signal``, ``json`` and ``pathlib`` would be ~20 ms of
a run that is ~40 ms in total (measured with ``python -X importtime``).

A request is a length-prefixed ``marshal``-encoded dict (``op``, and for ``run``: ``argv``, ``env``, ``umask``,
``package``, ``prefix``). marshal is safe here: both ends are the same interpreter (``prefix`` is checked), the
socket directory is private and the peer's uid is checked, and only dicts, lists, strings and ints are accepted.
The answers are single bytes: ``ACCEPTED`` once a child of the helper is ready to run the command, ``REFUSED``
when this helper will not serve (stale code, turned off) and the client should run the command itself, and at
the end ``EXIT`` followed by the exit code. The client answers ``ACCEPTED`` with ``GO``, sent in one ``sendmsg``
with its stdin, stdout, stderr and working directory as descriptors, and only then does the child run the
command. A client that stopped waiting (a stuck helper) closes the connection instead and runs the command
itself: a helper that wakes up later never runs it a second time, and never held the client's descriptors, so
a pipe the client writes to is not kept open by a stopped helper. While a command runs, the client may send
``SIGNAL`` and a signal number.
"""

from __future__ import annotations

import _socket
import marshal
import os
import struct
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Socket = _socket.socket

ACCEPTED = b"A"
REFUSED = b"R"
GO = b"G"
EXIT = b"E"
SIGNAL = b"S"
DISABLE_ENV = "AICACHE_HELPER"  # "0" turns the helper off for this process and everything it starts
MAX_REQUEST = 4 * 1024 * 1024  # an environment is a few KB; anything this large is not ours
_LENGTH = struct.Struct("!I")
_FDS = 4
# The environment that decides which store a command uses: one helper per distinct combination.
_STORE_ENV = ("AICACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "HOME")


class WireError(Exception):
    """The other side sent something that is not this protocol, or went away mid-message."""


def runtime_dir() -> str | None:
    """A directory only this user can enter, for the socket; None when none can be trusted.

    ``$XDG_RUNTIME_DIR/aicache`` (per user, made by the login manager) when set, else ``/tmp/aicache-<uid>``.
    A directory another user owns or can enter is refused: whoever controls the socket would receive the
    environment (API keys) of every command.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    directory = os.path.join(base, "aicache") if base and os.path.isdir(base) else f"/tmp/aicache-{os.getuid()}"
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(directory)
    except OSError:
        return None
    private = info.st_uid == os.getuid() and (info.st_mode & 0o077) == 0 and not os.path.islink(directory)
    return directory if private else None


def absolute_home() -> None:
    """Make a relative ``AICACHE_HOME`` absolute in this process's environment, against the current directory.

    Called once at startup: the socket (``store_key``), a helper started from here and every process this one
    starts then name the same store, whatever directory they run in later (the helper runs in ``/``).
    """
    value = os.environ.get("AICACHE_HOME")
    if value:
        os.environ["AICACHE_HOME"] = os.path.abspath(os.path.expanduser(value))


def store_key() -> str:
    """A short name for the store this environment uses (not secret; it only picks a socket)."""
    raw = "\0".join(os.environ.get(name, "") for name in _STORE_ENV).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}"


def socket_path() -> str | None:
    directory = runtime_dir()
    return os.path.join(directory, f"{store_key()}.sock") if directory is not None else None


def companion(socket: str, suffix: str) -> str:
    """The helper's lock (``.lock``) or log (``.log``) file, next to its socket."""
    return socket.removesuffix(".sock") + suffix


def encode(message: dict[str, Any]) -> bytes:
    body = marshal.dumps(message)
    return _LENGTH.pack(len(body)) + body


def send_request(sock: Socket, message: dict[str, Any], fds: list[int]) -> None:
    data = encode(message)
    rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))] if fds else []
    sent = sock.sendmsg([data], rights)
    if sent < len(data):
        sock.sendall(data[sent:])


def send_go(sock: Socket, fds: list[int]) -> None:
    sock.sendmsg([GO], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])


def receive_go(sock: Socket) -> list[int] | None:
    """The client's descriptors once it says ``GO``; None when it closed the connection or said something else."""
    data, ancillary, _flags, _address = sock.recvmsg(1, _socket.CMSG_SPACE(_FDS * 4))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
    if data == GO and len(fds) == _FDS:
        return fds
    for fd in fds:
        os.close(fd)
    return None


def receive_request(sock: Socket) -> tuple[dict[str, Any], list[int]]:
    """Read one request and the descriptors that came with it (the caller owns and must close them)."""
    data, ancillary, _flags, _address = sock.recvmsg(64 * 1024, _socket.CMSG_SPACE(_FDS * 4))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
    try:
        if len(data) < _LENGTH.size:
            raise WireError("short request")
        (length,) = _LENGTH.unpack_from(data)
        if length > MAX_REQUEST:
            raise WireError("request too large")
        body = bytearray(data[_LENGTH.size :])
        while len(body) < length:
            chunk = sock.recv(min(65536, length - len(body)))
            if not chunk:
                raise WireError("request cut short")
            body += chunk
        message = marshal.loads(bytes(body[:length]))
        if not _plain(message) or not isinstance(message, dict):
            raise WireError("request is not a plain dict")
        return message, fds
    except (WireError, ValueError, EOFError, TypeError):
        for fd in fds:
            os.close(fd)
        raise WireError("not an aicache helper request") from None


def _plain(value: object) -> bool:
    """Only the types a request is made of: no code objects, sets or bytes from marshal."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def read_reply(sock: Socket) -> dict[str, Any]:
    """Read a length-prefixed reply (to ``status`` and ``stop``)."""
    (length,) = _LENGTH.unpack(_read_exact(sock, _LENGTH.size))
    reply = marshal.loads(_read_exact(sock, length))
    if not isinstance(reply, dict) or not _plain(reply):
        raise WireError("reply is not a plain dict")
    return reply


def _read_exact(sock: Socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise WireError("the helper closed the connection")
        data += chunk
    return data
