"""The HTTP layer every HTTP provider shares: POST a JSON body, get back JSON or a stream of server-sent events.

Design
------
* **Lazy and light.** httpx is imported inside the functions (an exact cache hit never pays for it) and without
  its command-line module (see ``import_httpx``). One short-lived ``httpx.Client`` per call: aicache makes one
  provider call per process, so a connection pool would buy nothing.
* **Timeouts.** ``connect_timeout`` bounds the TCP/TLS connect; ``read_timeout`` bounds the wait for the response
  head and every gap between two received bytes (``httpx.Timeout``), so a silent server fails. A server that
  trickles a byte now and then never trips a per-read timeout, so there is also an overall rule: once the
  response head has arrived, the whole body must arrive within ``DEADLINE_FACTOR`` x ``read_timeout`` (10
  minutes with the defaults). The deadline is checked whenever bytes arrive, so it fires at most one read
  timeout late. ``total_timeout``, when set, bounds the whole call, retries and their waits included: each
  attempt's timeouts are cut to what is left, no retry starts that could not end in time, and the body's
  deadline is the nearer of the two. The commit hook sets it, so a slow provider fails inside the ask (and is
  recorded) before the hook gives up.
* **Retries.** Up to ``HttpSettings.retries`` extra attempts on connection failures (refused, reset, connect
  timeout, server closed the connection before answering) and on HTTP 408, 429 and 5xx, with exponential
  backoff and jitter. A ``Retry-After`` header (seconds or an HTTP date) replaces the backoff; one longer than
  ``max_retry_after`` fails at once with a clear message instead of a long silent wait. A JSON answer whose
  body is cut short (the connection closed before ``Content-Length`` bytes arrived, or the JSON ends inside
  itself) is a network failure too, retried within the same budget: none of it was shown. Nothing is retried
  once a stream has started (its first byte may already be on the user's screen), nor on a read timeout (a
  slow server would multiply the wait), nor on other 4xx (the request itself is wrong).
* **Errors.** Every failure is one ``ProviderError`` line with the HTTP status and the server's own message
  (OpenAI ``{"error": {"message": ...}}``, Anthropic ``{"type": "error", "error": {"message": ...}}``). Text
  that goes into a message is scrubbed of the credentials found in the request headers and of anything shaped
  like an API key, because servers do echo keys back ("Incorrect API key provided: sk-...").
* ``KeyboardInterrupt`` is never caught: Ctrl-C closes the connection on its way out and nothing else.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import random
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from aicache.errors import ConfigError, ProviderError
from aicache.providers.base import Completion, HttpSettings, ProviderRequest, TextSink

if TYPE_CHECKING:
    import httpx

#: a response body must be complete within this many read timeouts of its head arriving
DEADLINE_FACTOR = 5
#: how much of an error body is read to find the server's message
MAX_ERROR_BODY = 64 * 1024
#: longest server message quoted in an error
MAX_DETAIL = 300
#: shortest credential scrubbed from messages by plain replacement. Local servers take any key, so people pass
#: placeholders like ``x``, ``k`` or ``none``: replacing those letter by letter garbles every message (``invalid
#: api [redacted]ey``) while hiding nothing, as no real provider issues keys this short and a placeholder is
#: no secret. Key-shaped text is still redacted by pattern whatever the key's length.
MIN_SECRET = 8

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TAG = re.compile(r"<[^>]*>")
#: what may follow the point where a JSON parse failed when the body was cut short inside a number or a \u escape
_PARTIAL_NUMBER_OR_ESCAPE = re.compile(r"[-+.eE0-9]*|u[0-9a-fA-F]{0,3}")

T = TypeVar("T")


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: its ``event:`` name ("message" when absent) and its ``data:`` lines joined."""

    event: str
    data: str

    def json_object(self) -> dict[str, Any]:
        """The event's data as a JSON object; anything else is a broken stream."""
        try:
            value = json.loads(self.data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ProviderError(f"invalid event in the stream: {scrub(self.data[:200])}")
        return value


def import_httpx() -> ModuleType:
    """Import httpx without its command-line module.

    ``httpx/__init__`` runs ``try: from ._main import main except ImportError`` and ``httpx._main`` (the
    ``httpx`` console script, never used here) imports rich, click and pygments: about 70 ms, a third of
    httpx's import time. A ``None`` entry in ``sys.modules`` makes that import raise ImportError, which httpx
    answers with a stub. It is set only while httpx is not loaded yet, so a process that already has the real
    ``httpx._main`` keeps it.
    """
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    import httpx

    return httpx


def post_json(url: str, body: Mapping[str, Any], headers: Mapping[str, str], settings: HttpSettings) -> dict[str, Any]:
    """POST ``body`` as JSON and return the JSON object the server answers with (retrying as described above)."""
    hx = import_httpx()
    secrets = _secrets(headers)
    where = _where(url)
    deadline = _Deadline.of(settings)

    def whole_json(response: httpx.Response) -> dict[str, Any]:
        broken = f"response from {where} broke off"
        try:
            raw = b"".join(_body(hx, response, settings, secrets, broken, deadline))
        except _ConnectionLost as lost:
            raise _Retryable(str(lost)) from None  # nothing of it was shown: ask again
        finally:
            response.close()
        try:
            data = json.loads(raw)
        except ValueError:
            if _cut_short(raw):  # closed early with no Content-Length to tell: a broken connection all the same
                raise _Retryable(f"{broken}: the JSON ended unfinished after {len(raw)} bytes") from None
            raise ProviderError(f"{where} answered with invalid JSON: {_detail(raw, secrets)}") from None
        if not isinstance(data, dict):
            raise ProviderError(f"{where} answered with JSON that is not an object: {_detail(raw, secrets)}")
        return data

    with _client(hx, settings, url) as client:
        json_headers = {**headers, "accept": "application/json"}
        return _send(hx, client, url, body, json_headers, settings, secrets, whole_json, deadline)


def stream_sse(
    url: str, body: Mapping[str, Any], headers: Mapping[str, str], settings: HttpSettings
) -> Generator[SseEvent, None, None]:
    """POST ``body`` as JSON and yield the server-sent events of the answer as they arrive.

    A generator: nothing is sent before the first ``next()``. Close it (``contextlib.closing``) when stopping
    early so the connection is released at once. A stream that breaks off raises ``ProviderError`` whose
    message starts with "stream ended before the answer was complete".
    """
    hx = import_httpx()
    secrets = _secrets(headers)
    # identity: a compressing proxy or server would buffer the stream to fill its compression blocks
    stream_headers = {**headers, "accept": "text/event-stream", "accept-encoding": "identity"}
    deadline = _Deadline.of(settings)
    with _client(hx, settings, url) as client:
        # The stream is read below, outside the retries: once its first text may be on screen it is never retried.
        response = _send(hx, client, url, body, stream_headers, settings, secrets, lambda started: started, deadline)
        try:
            _require_event_stream(hx, response, url, secrets)
            parser = SseParser()
            broken = "stream ended before the answer was complete"
            for chunk in _body(hx, response, settings, secrets, broken, deadline):
                yield from parser.feed(chunk)
        finally:
            response.close()


class SseParser:
    """Incremental server-sent events parser (the WHATWG rules that matter for LLM APIs).

    Bytes may arrive split anywhere, even inside a UTF-8 character or between the CR and LF of a line break.
    An event is dispatched at a blank line; one cut off by the end of the stream is dropped, as the spec says,
    since its data may be incomplete.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._pending = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._pending + self._decoder.decode(chunk)
        # A trailing CR may be the first half of CRLF: keep it until the next chunk says.
        held = "\r" if text.endswith("\r") else ""
        *lines, self._pending = _LINE_BREAK.split(text[: len(text) - len(held)])
        self._pending += held
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            event = SseEvent(self._event or "message", "\n".join(self._data)) if self._data else None
            self._event, self._data = "", []
            return event
        if line.startswith(":"):  # a comment: keep-alives such as ": OPENROUTER PROCESSING"
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait that a ``Retry-After`` header asks for (a number or an HTTP date); None if absent/invalid."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        from datetime import UTC
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # HTTP dates are always GMT
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def server_message(body: bytes | str | Mapping[str, Any]) -> str:
    """The human part of an error body: the message from the usual JSON error shapes, else the text itself."""
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except ValueError:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            return _one_line(_TAG.sub(" ", text) if "<" in text else text)
    if isinstance(data, Mapping):
        error = data.get("error", data)
        if isinstance(error, str):
            return _one_line(error)
        if isinstance(error, Mapping):
            for name in ("message", "detail", "type", "code"):
                if isinstance(error.get(name), str) and error[name].strip():
                    return _one_line(error[name])
    return _one_line(json.dumps(data))


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Redact anything shaped like a secret as ``redact`` does, then replace every given secret with ``[redacted]``.

    The shapes are redact.toml's, the one pattern set: a server that echoes a key we did not send ("Incorrect
    API key provided: sk-...") is scrubbed by the same rules as a question. They run first, on the text as the
    server wrote it, so a literal replacement can never cut a key-shaped string into pieces no pattern matches.
    Secrets shorter than ``MIN_SECRET`` are not replaced (see there).
    """
    from aicache import redact

    text = redact.redact(text).text
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SECRET:
            text = text.replace(secret, "[redacted]")
    return text


def _secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS and value.strip():
            found.append(value.strip())
            _scheme, _, token = value.strip().partition(" ")  # "Bearer <key>"
            if token.strip():
                found.append(token.strip())
    return tuple(found)


def _client(hx: Any, settings: HttpSettings, url: str) -> httpx.Client:
    timeout = hx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.connect_timeout,
    )
    # No redirects: following a POST elsewhere could hand the key to another host. That also means a plain
    # http:// endpoint (Ollama, llama.cpp, a local vLLM) never reaches TLS, so it skips loading the CA bundle,
    # which costs ~50 ms of the time to first byte; https:// endpoints are always verified.
    verify = tls_context(hx) if url.lower().startswith("https://") else False
    client: httpx.Client = hx.Client(timeout=timeout, follow_redirects=False, verify=verify)
    return client


_TLS_CONTEXTS: dict[tuple[str, str], Any] = {}


def tls_context(hx: ModuleType) -> Any:
    """httpx's verifying SSL context, built once per process (loading the CA bundle costs ~30 ms).

    Keyed by the variables httpx reads (``SSL_CERT_FILE``, ``SSL_CERT_DIR``), so a warm helper serving
    environments that differ in them still verifies each against its own bundle.
    """
    key = (os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))
    if key not in _TLS_CONTEXTS:
        _TLS_CONTEXTS[key] = hx.create_ssl_context()
    return _TLS_CONTEXTS[key]


def _send(
    hx: Any,
    client: httpx.Client,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    settings: HttpSettings,
    secrets: tuple[str, ...],
    read: Callable[[httpx.Response], T],
    deadline: _Deadline,
) -> T:
    """Send with retries; return what ``read`` makes of the successful response (``read`` closes it, or hands it
    on unread for the caller to close). ``read`` may raise ``_Retryable`` for a body cut short: that spends an
    attempt of the same budget as a failed connection."""
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    try:
        request = client.build_request("POST", url, content=payload, headers=_with_defaults(headers))
    except hx.InvalidURL as exc:
        raise ConfigError(f"invalid URL {_where(url)!r} (check the base URL): {_describe(exc, secrets)}") from None
    attempts = max(1, settings.retries + 1)
    for attempt in range(1, attempts + 1):
        timeouts = deadline.cut(hx, request, settings)
        try:
            response = _attempt(hx, client, request, _where(url), timeouts, secrets)
            if response.is_success:
                return read(response)
        except _Retryable as failure:
            if attempt == attempts:
                tried = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
                raise ProviderError(f"{failure}{tried}") from None
            _sleep(deadline.allows(_backoff(settings, attempt), str(failure)))
            continue
        wait = _failure(hx, response, _where(url), settings, secrets, attempt=attempt, attempts=attempts)
        _sleep(deadline.allows(wait, f"HTTP {response.status_code} from {_where(url)}"))
    raise AssertionError("unreachable: the last attempt returns or raises")


@dataclass(frozen=True)
class _Deadline:
    """When a whole call must be over (``HttpSettings.total_timeout``); ``at`` None: no such limit."""

    at: float | None
    seconds: float | None

    @classmethod
    def of(cls, settings: HttpSettings) -> _Deadline:
        total = settings.total_timeout
        return cls(None if total is None else time.monotonic() + total, total)

    def left(self) -> float:
        return math.inf if self.at is None else self.at - time.monotonic()

    def cut(self, hx: Any, request: httpx.Request, settings: HttpSettings) -> HttpSettings:
        """The settings for the next attempt: its timeouts cut to the time left, and set on the request (httpx
        reads a request's own timeouts from its extensions)."""
        if self.at is None:
            return settings
        left = max(self.left(), 0.001)
        cut = replace(
            settings, connect_timeout=min(settings.connect_timeout, left), read_timeout=min(settings.read_timeout, left)
        )
        connect, read = cut.connect_timeout, cut.read_timeout
        request.extensions["timeout"] = hx.Timeout(connect=connect, read=read, write=read, pool=connect).as_dict()
        return cut

    def allows(self, wait: float, failure: str) -> float:
        """``wait`` when a retry after it can still start in time; else the call fails now with ``failure``."""
        if wait >= self.left():
            raise ProviderError(f"{failure} (gave up: no answer within {self.seconds:g} s, http.total_timeout)")
        return wait


class _Retryable(Exception):
    """A connection failure before any response, or a JSON body cut short: worth another attempt."""


class _ConnectionLost(ProviderError):
    """The connection broke while a body was arriving (closed early, reset): a JSON answer is asked again; a
    stream, whose text may already be shown, reports it."""


def _attempt(
    hx: Any, client: httpx.Client, request: httpx.Request, where: str, settings: HttpSettings, secrets: tuple[str, ...]
) -> httpx.Response:
    """One send, with httpx's exceptions turned into ours (``_Retryable`` for the ones worth retrying)."""
    try:
        response: httpx.Response = client.send(request, stream=True)
    except hx.ConnectTimeout:
        raise _Retryable(f"cannot connect to {where}: timed out after {_seconds(settings.connect_timeout)} s") from None
    except (hx.NetworkError, hx.RemoteProtocolError) as exc:
        message = f"cannot connect to {where}: {_describe(exc, secrets)}"
        if _is_tls_failure(exc):  # a certificate problem does not heal by retrying
            raise ProviderError(message) from None
        raise _Retryable(message) from None
    except hx.TimeoutException:
        raise ProviderError(
            f"timed out: {where} sent no response within {_seconds(settings.read_timeout)} s (read timeout)"
        ) from None
    except hx.UnsupportedProtocol as exc:
        raise ConfigError(f"invalid URL {where!r} (check the base URL): {_describe(exc, secrets)}") from None
    except hx.HTTPError as exc:
        raise ProviderError(f"request to {where} failed: {_describe(exc, secrets)}") from None
    return response


def _seconds(value: float) -> str:
    """A timeout as people write it: ``120``, ``0.5``, not ``0.497106`` when the time left cut it short."""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _with_defaults(headers: Mapping[str, str]) -> dict[str, str]:
    return {"content-type": "application/json", "user-agent": "aicache", **headers}


def _failure(
    hx: Any,
    response: httpx.Response,
    where: str,
    settings: HttpSettings,
    secrets: tuple[str, ...],
    *,
    attempt: int,
    attempts: int,
) -> float:
    """Read an error response; raise its ProviderError, or return how long to wait before retrying it."""
    status = response.status_code
    tried = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
    try:
        detail = _detail(_read_some(response, MAX_ERROR_BODY), secrets)
    except hx.HTTPError:
        detail = ""  # the status alone still says what happened
    finally:
        response.close()
    if 300 <= status < 400 and response.headers.get("location"):
        detail = f"redirected to {scrub(response.headers['location'], secrets)}; set the base URL to that address"
    retryable = status in (408, 429) or status >= 500
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    what = "rate limited" if status == 429 else "server busy"
    if retryable and retry_after is not None and retry_after > settings.max_retry_after:
        raise ProviderError(
            f"{what} (HTTP {status} from {where}): server asks to retry after {retry_after:.0f} s, "
            f"more than the {settings.max_retry_after:g} s cap" + (f": {detail}" if detail else ""),
            status=status,
        )
    if not retryable or attempt == attempts:
        raise ProviderError(f"HTTP {status} from {where}: {detail or response.reason_phrase}{tried}", status=status)
    return retry_after if retry_after is not None else _backoff(settings, attempt)


def _backoff(settings: HttpSettings, attempt: int) -> float:
    """Exponential backoff with jitter: base x 2^(attempt-1), scaled by a random 50-100 %, capped."""
    delay = min(settings.backoff * 2 ** (attempt - 1), settings.max_retry_after)
    # Jitter keeps many processes (xargs -P8 against one rate limit) from retrying in lockstep.
    return delay * random.uniform(0.5, 1.0)


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def _body(
    hx: Any,
    response: httpx.Response,
    settings: HttpSettings,
    secrets: tuple[str, ...],
    broken: str,
    total: _Deadline,
) -> Iterator[bytes]:
    """The response body as it arrives, under the read timeout, the body's deadline and the call's."""
    where = _where(str(response.request.url))
    limit = DEADLINE_FACTOR * settings.read_timeout
    deadline = time.monotonic() + limit
    try:
        for chunk in response.iter_bytes():
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"{broken}: {where} took longer than {_seconds(limit)} s "
                    f"(the limit is {DEADLINE_FACTOR} x the {_seconds(settings.read_timeout)} s read timeout)"
                )
            if total.left() < 0:
                raise ProviderError(f"{broken}: no complete answer within {total.seconds:g} s (http.total_timeout)")
            yield chunk
    except hx.ReadTimeout:
        raise ProviderError(
            f"{broken}: timed out, no data from {where} for {_seconds(settings.read_timeout)} s (read timeout)"
        ) from None
    except hx.TransportError as exc:
        raise _ConnectionLost(f"{broken}: connection to {where} lost ({_describe(exc, secrets)})") from None
    except hx.HTTPError as exc:  # a body that cannot be decoded (content-encoding): retrying will not mend it
        raise ProviderError(f"{broken}: {_describe(exc, secrets)}") from None


def _cut_short(raw: bytes) -> bool:
    """Whether ``raw``, which failed to parse, is the start of a JSON document that the end of the body cut off:
    the parse fails inside an unterminated string, or at the end, or on a partial number, literal or escape."""
    try:
        json.loads(raw.decode("utf-8", "replace"))  # a UTF-8 character cut in half is a cut too
    except json.JSONDecodeError as error:
        if error.msg.startswith("Unterminated string"):
            return True
        rest = error.doc[error.pos :].rstrip()
        partial = _PARTIAL_NUMBER_OR_ESCAPE.fullmatch(rest) is not None
        return error.msg != "Extra data" and (partial or any(w.startswith(rest) for w in ("true", "false", "null")))
    return False


def _read_some(response: httpx.Response, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


def _require_event_stream(hx: Any, response: httpx.Response, url: str, secrets: tuple[str, ...]) -> None:
    """A 2xx that is not an event stream is usually an error object from a proxy or a server ignoring stream."""
    content_type = response.headers.get("content-type", "")
    if "text/event-stream" in content_type:
        return
    try:
        detail = _detail(_read_some(response, MAX_ERROR_BODY), secrets)
    except hx.HTTPError:
        detail = ""
    raise ProviderError(
        f"{_where(url)} did not answer with an event stream (content-type {content_type or 'missing'!r})"
        + (f": {detail}" if detail else ""),
        status=response.status_code,
    )


def _is_tls_failure(exc: BaseException) -> bool:
    import ssl

    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> ssl; bounded in case of a cycle
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _where(url: str) -> str:
    """host[:port]/path of ``url``: enough to tell which endpoint failed, never userinfo or query strings."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed URL: httpx refuses it too, and the message shows it as given
        return url.partition("?")[0]
    if not parts.hostname:  # no scheme ("localhost:11434/v1"): nothing to split reliably
        return url.partition("?")[0]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6 literal
    return f"{host}{port}{parts.path}"


def _detail(raw: bytes, secrets: tuple[str, ...]) -> str:
    return scrub(server_message(raw), secrets)[:MAX_DETAIL]


def _describe(exc: BaseException, secrets: tuple[str, ...]) -> str:
    return scrub(_one_line(str(exc)) or type(exc).__name__, secrets)[:MAX_DETAIL]


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass
class StreamProgress(ABC):
    """What a provider's event stream has delivered so far; each protocol says how to ``feed`` it an event."""

    pieces: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @abstractmethod
    def feed(self, event: SseEvent, on_text: TextSink) -> bool:
        """Take one event, hand any text to ``on_text``; return True when the stream says it is finished."""


def collect_stream(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    request: ProviderRequest,
    progress: StreamProgress,
    on_text: TextSink,
) -> Completion:
    """Stream ``body`` to ``url`` and turn the events into a Completion.

    A stream that ends, or breaks, before a finish reason arrived is an error carrying the text shown so far;
    one that breaks after it only loses the usage counts, so its answer is complete.
    """
    try:
        with closing(stream_sse(url, body, headers, request.http)) as events:
            for event in events:
                if progress.feed(event, on_text):
                    break
    except ProviderError as exc:
        if progress.finish_reason is None:
            raise ProviderError(str(exc), status=exc.status, partial=progress.text) from None
    if progress.finish_reason is None:
        raise ProviderError("stream ended before the answer was complete", partial=progress.text)
    return Completion(
        text=progress.text,
        finish_reason=progress.finish_reason,
        model=str(progress.model or request.model),
        tokens_in=progress.tokens_in,
        tokens_out=progress.tokens_out,
    )
