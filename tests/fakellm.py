"""A real HTTP server on 127.0.0.1 that speaks the OpenAI and Anthropic wire formats, for tests and benchmarks.

Routes: ``POST /v1/chat/completions`` (and ``/chat/completions``) answer like OpenAI, ``POST /v1/messages``
like Anthropic; JSON or server-sent events depending on the request's ``stream`` field. Streams use HTTP/1.1
chunked encoding, as the real services do, so a dropped stream looks like a real one (an unfinished body).

Replies are scripted with ``enqueue(Reply...)`` and served first in, first out; with nothing queued, the
answer is ``"answer to: " + <last user message>`` (finish "stop"), so parallel processes get distinct,
predictable answers. ``respond`` (a request's body -> text, or None) answers before either: a benchmark's
simulated LLM judge. Every request is recorded in ``requests``.

    server = FakeLLM(); server.start()
    server.enqueue(Reply.status(503), Reply.text("hello"))
    ...  # point a provider at server.openai_url or server.url
    server.stop()

Standalone, for benchmarks: ``python -m tests.fakellm --port 0 --delay 0.2`` prints its URL, serves until killed.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_PATHS = ("/v1/chat/completions", "/chat/completions")
ANTHROPIC_PATH = "/v1/messages"
_ANTHROPIC_FINISH = {"stop": "end_turn", "length": "max_tokens"}


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    raw: bytes


@dataclass(frozen=True)
class Reply:
    """A scripted reply. Build one with the factories: ``text``, ``status``, ``drop_after``, ``trickle``, ``hang``.

    ``delay`` is the time before the first byte, added to the server-wide delay.
    """

    kind: str  # "text" | "status" | "drop" | "trickle" | "hang"
    content: str = ""
    finish_reason: str | None = "stop"
    usage: tuple[int, int] = (12, 34)
    chunks: tuple[str, ...] | None = None
    status_code: int = 200
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    n_chunks: int = 0
    interval: float = 0.0
    bytewise: bool = False
    seconds: float = 0.0
    delay: float = 0.0
    content_length: bool = True

    @classmethod
    def text(
        cls,
        text: str,
        finish_reason: str | None = "stop",
        usage: tuple[int, int] = (12, 34),
        chunks: list[str] | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """A whole answer. ``finish_reason=None`` ends the stream properly but without any final event."""
        return cls("text", text, finish_reason, usage, tuple(chunks) if chunks is not None else None, delay=delay)

    @classmethod
    def status(
        cls, code: int, message: str = "simulated error", headers: dict[str, str] | None = None, delay: float = 0.0
    ) -> Reply:
        """An HTTP error with a JSON error body in the route's own format."""
        return cls("status", status_code=code, message=message, headers=tuple((headers or {}).items()), delay=delay)

    @classmethod
    def drop_after(cls, n_chunks: int, text: str, delay: float = 0.0, content_length: bool = True) -> Reply:
        """Stream the first ``n_chunks`` pieces of ``text``, then close the connection mid-body (a JSON answer
        is cut off halfway, short of its Content-Length). ``content_length=False`` sends the JSON answer with no
        Content-Length, so its body ends cleanly at the close, inside the JSON."""
        return cls("drop", text, n_chunks=n_chunks, delay=delay, content_length=content_length)

    @classmethod
    def trickle(cls, text: str, interval: float, delay: float = 0.0, bytewise: bool = False) -> Reply:
        """A slow answer: a stream sends one character of ``text`` per event, one event every ``interval``
        seconds (its opening events at once); a JSON body goes out one byte every ``interval`` seconds.
        ``bytewise=True`` sends a stream one byte every ``interval`` seconds too, each byte its own HTTP chunk,
        so line breaks and UTF-8 characters arrive cut in half."""
        return cls("trickle", text, interval=interval, bytewise=bytewise, delay=delay)

    @classmethod
    def hang(cls, seconds: float, delay: float = 0.0) -> Reply:
        """Accept the request and send nothing for ``seconds`` (or until the server stops), then close."""
        return cls("hang", seconds=seconds, delay=delay)

    def pieces(self) -> list[str]:
        """The pieces of text a stream carries, one event each."""
        if self.kind == "trickle":
            return list(self.content)
        pieces = list(self.chunks) if self.chunks is not None else split_chunks(self.content)
        return pieces[: self.n_chunks] if self.kind == "drop" else pieces


def split_chunks(text: str, count: int = 4) -> list[str]:
    """``text`` cut at word boundaries into at most ``count`` pieces that join back to it."""
    words = re.findall(r"\S+\s*|\s+", text)
    if not words:
        return [text] if text else []
    size = -(-len(words) // count)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class FakeLLM:
    """The server. ``delay`` is the time to first byte for every reply (benchmarks use it as model latency)."""

    def __init__(
        self, delay: float = 0.0, port: int = 0, respond: Callable[[dict[str, Any]], str | None] | None = None
    ) -> None:
        self.delay = delay
        self.respond = respond  # a request's body -> the reply's text, or None for the queue or the default
        self.requests: list[Recorded] = []
        self._port = port
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeLLM is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> FakeLLM:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging and trickling replies
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        text = self.respond(body) if self.respond is not None else None
        if text is not None:
            return Reply.text(text)
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return Reply.text("answer to: " + _last_user_text(body))

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _pause(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; return whether it is still running."""
        return not self._stopping.wait(seconds) if seconds > 0 else not self._stopping.is_set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLLM

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, dropped streams) is what these tests do on purpose: stay quiet about
        # that, and only that, so a bug in this server still shows its traceback.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # Anthropic content blocks
                return "".join(b.get("text", "") for b in content if isinstance(b, dict))
            return str(content)
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # no access log on the test output

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.split("?", 1)[0]
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        fake._record(Recorded(path, {k.lower(): v for k, v in self.headers.items()}, body, raw))
        if path in OPENAI_PATHS:
            wire: _Wire = _OpenAI(body)
        elif path == ANTHROPIC_PATH:
            wire = _Anthropic(body)
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        if not isinstance(parsed, dict):
            self._send_json(400, wire.error_body(400, "request body must be a JSON object"))
            return
        reply = fake._next_reply(body)
        if not fake._pause(fake.delay + reply.delay):
            return
        try:
            self._serve(reply, wire, bool(body.get("stream")))
        except ConnectionError:
            self.close_connection = True  # the client gave up (a timeout under test)

    def _serve(self, reply: Reply, wire: _Wire, stream: bool) -> None:
        fake = self.server.fake
        if reply.kind == "hang":
            fake._pause(reply.seconds)
            self.close_connection = True
        elif reply.kind == "status":
            self._send_json(reply.status_code, wire.error_body(reply.status_code, reply.message), reply.headers)
        elif not stream:
            body = json.dumps(wire.whole(reply)).encode()
            if reply.content_length:
                self._head(200, "application/json", len(body))
            else:  # a body that ends where the connection closes, as HTTP/1.0 allowed
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("connection", "close")
                self.end_headers()
            if reply.kind == "trickle":
                self._trickle(body, reply.interval, chunked=False)
            elif reply.kind == "drop":
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True  # shorter than its content-length: a broken answer
            else:
                self.wfile.write(body)
        else:
            self._head(200, "text/event-stream")
            self._stream(reply, wire)

    def _stream(self, reply: Reply, wire: _Wire) -> None:
        if reply.bytewise:
            events = wire.opening(reply) + b"".join(map(wire.piece, reply.pieces())) + wire.closing(reply)
            self._trickle(events, reply.interval, chunked=True)
            self._chunk(b"")
            return
        self._chunk(wire.opening(reply))
        for piece in reply.pieces():
            if reply.kind == "trickle" and not self.server.fake._pause(reply.interval):
                self.close_connection = True
                return
            self._chunk(wire.piece(piece))
        if reply.kind == "drop":
            self.close_connection = True  # closing now leaves the chunked body unfinished
            return
        self._chunk(wire.closing(reply))
        self._chunk(b"")  # the end of the chunked body

    def _head(self, status: int, content_type: str, length: int | None = None, extra: Any = ()) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        if length is None:
            self.send_header("transfer-encoding", "chunked")
            self.send_header("cache-control", "no-cache")
        else:
            self.send_header("content-length", str(length))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def _send_json(self, status: int, data: dict[str, Any], headers: Any = ()) -> None:
        body = json.dumps(data).encode()
        self._head(status, "application/json", len(body), headers)
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _trickle(self, data: bytes, interval: float, *, chunked: bool) -> None:
        fake = self.server.fake
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            if not fake._pause(interval):
                self.close_connection = True
                return
            if chunked:
                self._chunk(data[i : i + 1])
            else:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()


class _Wire:
    """One API's formats: whole JSON answer, stream events, error body."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.model = str(body.get("model") or "fake-model")
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def whole(self, reply: Reply) -> dict[str, Any]:
        raise NotImplementedError

    def opening(self, reply: Reply) -> bytes:
        """Events before the first piece of text."""
        raise NotImplementedError

    def piece(self, text: str) -> bytes:
        """The event that carries one piece of text."""
        raise NotImplementedError

    def closing(self, reply: Reply) -> bytes:
        """Events after the text: the final ones, or none when ``finish_reason`` is None."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    text = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {text}\n\n".encode()


class _OpenAI(_Wire):
    def whole(self, reply: Reply) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": self._usage(reply),
        }

    def opening(self, reply: Reply) -> bytes:
        return b": keep-alive comment, as some proxies send\n\n" + self._chunk(
            {"role": "assistant", "content": ""}, None
        )

    def piece(self, text: str) -> bytes:
        return self._chunk({"content": text}, None)

    def closing(self, reply: Reply) -> bytes:
        if reply.finish_reason is None:
            return b""
        usage = _sse({**self._head(), "choices": [], "usage": self._usage(reply)}) if self.include_usage else b""
        return self._chunk({}, reply.finish_reason) + usage + _sse("[DONE]")

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}

    def _head(self) -> dict[str, Any]:
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": self.model}

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        return _sse({**self._head(), "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    @staticmethod
    def _usage(reply: Reply) -> dict[str, int]:
        tokens_in, tokens_out = reply.usage
        return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


class _Anthropic(_Wire):
    def whole(self, reply: Reply) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{"type": "text", "text": reply.content}],
            "stop_reason": self._stop_reason(reply),
            "stop_sequence": None,
            "usage": {"input_tokens": reply.usage[0], "output_tokens": reply.usage[1]},
        }

    def opening(self, reply: Reply) -> bytes:
        message = {**self.whole(reply), "content": [], "stop_reason": None}
        message["usage"] = {"input_tokens": reply.usage[0], "output_tokens": 1}
        block = {"type": "text", "text": ""}
        return (
            _sse({"type": "message_start", "message": message}, "message_start")
            + _sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start")
            + _sse({"type": "ping"}, "ping")
        )

    def piece(self, text: str) -> bytes:
        delta = {"type": "text_delta", "text": text}
        return _sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")

    def closing(self, reply: Reply) -> bytes:
        if reply.finish_reason is None:
            return b""
        delta = {"stop_reason": self._stop_reason(reply), "stop_sequence": None}
        usage = {"output_tokens": reply.usage[1]}
        return (
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            + _sse({"type": "message_delta", "delta": delta, "usage": usage}, "message_delta")
            + _sse({"type": "message_stop"}, "message_stop")
        )

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = {429: "rate_limit_error", 401: "authentication_error", 529: "overloaded_error"}
        return {"type": "error", "error": {"type": kind.get(status, "api_error"), "message": message}}

    @staticmethod
    def _stop_reason(reply: Reply) -> str | None:
        if reply.finish_reason is None:
            return None
        return _ANTHROPIC_FINISH.get(reply.finish_reason, reply.finish_reason)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before the first byte of every reply")
    args = parser.parse_args(argv)
    server = FakeLLM(delay=args.delay, port=args.port).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
