"""Providers over real HTTP on 127.0.0.1 (tests/fakellm.py), the command provider over real processes, endpoint
and key resolution, and the key file.

Timeouts and backoffs are small so the whole file runs in seconds; each test asserts what the user would see
(text, finish reason, error message, number of requests the server got).
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aicache import config, credentials
from aicache.config import Settings
from aicache.errors import ConfigError, ProviderError, UsageError
from aicache.providers import PROVIDERS, Endpoint, endpoint, get_provider, resolve_endpoint
from aicache.providers.anthropic import AnthropicProvider
from aicache.providers.base import Completion, HttpSettings, Message, ProviderRequest
from aicache.providers.command import CommandProvider, flatten_prompt
from aicache.providers.http import SseEvent, SseParser, retry_after_seconds, scrub, stream_sse
from aicache.providers.openai import OpenAIProvider
from tests.fakellm import FakeLLM, Reply

KEY = "tk_live_" + "a1b2c3d4" * 4  # not shaped like an OpenAI key: only exact scrubbing can hide it
FAST = HttpSettings(connect_timeout=0.5, read_timeout=1.0, retries=3, backoff=0.01, max_retry_after=30.0)
HTTP_PROVIDERS = ("openai", "anthropic")


def _url(server: FakeLLM, provider: str) -> str:
    return server.openai_url if provider == "openai" else server.url


def _ask(
    provider: str,
    server: FakeLLM | str,
    *,
    stream: bool = True,
    key: str | None = KEY,
    http: HttpSettings = FAST,
    question: str = "hello",
    system: str | None = None,
    params: tuple[tuple[str, float | int], ...] = (),
) -> tuple[Completion, list[str]]:
    """One call through the real provider; returns the completion and the pieces given to on_text."""
    base_url = server if isinstance(server, str) else _url(server, provider)
    request = ProviderRequest(
        model="test-model",
        messages=(Message("user", question),),
        system=system,
        params=params,
        stream=stream,
        base_url=base_url,
        api_key=key,
        http=http,
    )
    pieces: list[str] = []
    completion = get_provider(provider).complete(request, pieces.append)
    return completion, pieces


def _fail(provider: str, server: FakeLLM | str, **kwargs: object) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        _ask(provider, server, **kwargs)  # type: ignore[arg-type]
    return caught.value


# --- OpenAI wire format -----------------------------------------------------------------------------------------


def test_openai_stream_delivers_pieces_usage_and_request_body(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("Hello there, world!", chunks=["Hel", "lo there, ", "world!"], usage=(7, 3)))
    params = (("seed", 42), ("temperature", 0.2))
    completion, pieces = _ask("openai", fake_llm, system="be brief", question="hi", params=params)

    assert pieces == ["Hel", "lo there, ", "world!"]
    assert completion == Completion("Hello there, world!", "stop", "test-model", tokens_in=7, tokens_out=3)
    assert completion.complete
    sent = fake_llm.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["temperature"] == 0.2 and sent.body["seed"] == 42


def test_openai_json_answer_is_delivered_once(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("whole answer", usage=(5, 2)))
    completion, pieces = _ask("openai", fake_llm, stream=False)

    assert pieces == ["whole answer"]
    assert (completion.text, completion.finish_reason, completion.tokens_in, completion.tokens_out) == (
        "whole answer",
        "stop",
        5,
        2,
    )
    assert "stream" not in fake_llm.requests[0].body


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
def test_a_local_server_is_asked_without_key_and_gets_none(fake_llm: FakeLLM, provider: str) -> None:
    completion, _ = _ask(provider, fake_llm, key=None)
    assert completion.complete
    assert not {"authorization", "x-api-key"} & set(fake_llm.requests[0].headers)


@pytest.mark.parametrize(
    ("provider", "env"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"), ("ollama", None)]
)
@pytest.mark.parametrize("stream", [True, False])
def test_the_providers_own_service_without_key_is_refused_before_sending(
    monkeypatch: pytest.MonkeyPatch, provider: str, env: str | None, stream: bool
) -> None:
    dialled: list[object] = []

    def refused(_sock: socket.socket, address: object) -> None:
        dialled.append(address)
        raise ConnectionRefusedError("nothing listens here")

    monkeypatch.setattr(socket.socket, "connect", refused)
    request = ProviderRequest(model="m", messages=(Message("user", "hi"),), stream=stream, http=HttpSettings(retries=0))
    if env is None:  # Ollama takes no key: its default endpoint is on this machine, and it is asked
        with pytest.raises(ProviderError, match="cannot connect to localhost:11434"):
            get_provider(provider).complete(request, lambda _text: None)
        assert dialled
        return
    with pytest.raises(ConfigError) as caught:
        get_provider(provider).complete(request, lambda _text: None)
    assert dialled == [] and caught.value.exit_code == 5
    assert str(caught.value).startswith(f"no API key for {provider}, so nothing was sent to https://api.")
    assert f"aicache keys set {provider}" in str(caught.value) and env in str(caught.value)


def test_default_reply_answers_each_question_distinctly(fake_llm: FakeLLM) -> None:
    first, _ = _ask("openai", fake_llm, question="one")
    second, _ = _ask("anthropic", fake_llm, question="two")
    assert (first.text, second.text) == ("answer to: one", "answer to: two")


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(("provider", "reason"), [("openai", "length"), ("anthropic", "max_tokens")])
def test_truncated_answer_is_returned_as_such(fake_llm: FakeLLM, provider: str, reason: str, stream: bool) -> None:
    fake_llm.enqueue(Reply.text("cut sh", finish_reason="length"))
    completion, _ = _ask(provider, fake_llm, stream=stream)
    assert (completion.text, completion.finish_reason, completion.complete) == ("cut sh", reason, False)


# --- Anthropic wire format --------------------------------------------------------------------------------------


def test_anthropic_stream_headers_body_and_usage(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("Bonjour le monde", chunks=["Bon", "jour le ", "monde"], usage=(9, 4)))
    completion, pieces = _ask("anthropic", fake_llm, system="in French", params=(("temperature", 0.5),))

    assert pieces == ["Bon", "jour le ", "monde"]
    assert completion == Completion("Bonjour le monde", "end_turn", "test-model", tokens_in=9, tokens_out=4)
    sent = fake_llm.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.body["system"] == "in French"
    assert sent.body["messages"] == [{"role": "user", "content": "hello"}]
    assert sent.body["max_tokens"] == 4096 and sent.body["temperature"] == 0.5 and sent.body["stream"] is True


def test_anthropic_json_answer(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("plain", usage=(3, 1)))
    completion, pieces = _ask("anthropic", fake_llm, stream=False)
    assert pieces == ["plain"]
    assert (completion.finish_reason, completion.tokens_in, completion.tokens_out) == ("end_turn", 3, 1)
    assert "stream" not in fake_llm.requests[0].body and "system" not in fake_llm.requests[0].body


def test_anthropic_max_tokens_from_params_then_settings(fake_llm: FakeLLM) -> None:
    config.save_value("providers.anthropic.max_tokens", "77")
    provider = get_provider("anthropic", config.load())
    assert isinstance(provider, AnthropicProvider)
    request = ProviderRequest(model="m", messages=(Message("user", "q"),), base_url=fake_llm.url, http=FAST)
    provider.complete(request, lambda _text: None)
    with_param = ProviderRequest(
        model="m", messages=(Message("user", "q"),), params=(("max_tokens", 12.0),), base_url=fake_llm.url, http=FAST
    )
    provider.complete(with_param, lambda _text: None)
    assert [r.body["max_tokens"] for r in fake_llm.requests] == [77, 12]
    assert isinstance(fake_llm.requests[1].body["max_tokens"], int)


def test_anthropic_base_url_with_v1_is_not_doubled(fake_llm: FakeLLM) -> None:
    _ask("anthropic", fake_llm.url + "/v1/")
    assert fake_llm.requests[0].path == "/v1/messages"


# --- retries ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
def test_server_errors_are_retried_until_success(fake_llm: FakeLLM, provider: str) -> None:
    fake_llm.enqueue(Reply.status(500), Reply.status(503), Reply.text("finally"))
    completion, pieces = _ask(provider, fake_llm)
    assert completion.text == "finally" and "".join(pieces) == "finally"
    assert len(fake_llm.requests) == 3


def test_retries_are_bounded(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(*[Reply.status(503, "overloaded, try later")] * 5)
    error = _fail("openai", fake_llm, http=HttpSettings(retries=2, backoff=0.01))
    assert len(fake_llm.requests) == 3
    assert error.status == 503
    assert "HTTP 503" in str(error) and "overloaded, try later" in str(error) and "3 attempts" in str(error)


def test_retry_after_seconds_is_honoured(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.status(429, "slow down", headers={"Retry-After": "1"}), Reply.text("ok"))
    started = time.monotonic()
    completion, _ = _ask("openai", fake_llm, http=HttpSettings(retries=2, backoff=0.0))
    assert completion.text == "ok"
    assert time.monotonic() - started >= 0.95  # a lower bound only: a busy machine can lengthen a wait, not cut it
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
def test_long_retry_after_fails_at_once(fake_llm: FakeLLM, provider: str) -> None:
    fake_llm.enqueue(Reply.status(429, "rate limit reached", headers={"Retry-After": "3600"}))
    error = _fail(provider, fake_llm)  # waiting an hour would meet the pytest timeout first
    assert len(fake_llm.requests) == 1
    assert error.status == 429
    message = str(error)
    assert message.startswith("rate limited (HTTP 429")
    assert "retry after 3600 s, more than the 30 s cap" in message and "rate limit reached" in message


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
@pytest.mark.parametrize("status", [400, 401])
def test_client_errors_are_not_retried_and_never_show_the_key(fake_llm: FakeLLM, provider: str, status: int) -> None:
    # Real servers echo the key back ("Incorrect API key provided: sk-..."); this one does too.
    fake_llm.enqueue(Reply.status(status, f"Incorrect API key provided: {KEY}. Check it."))
    for stream in (True, False):
        error = _fail(provider, fake_llm, stream=stream)
        assert error.status == status
        assert f"HTTP {status}" in str(error) and "Incorrect API key provided" in str(error)
        assert KEY not in str(error) and KEY[8:20] not in str(error)
        assert "\n" not in str(error)
        fake_llm.enqueue(Reply.status(status, f"Incorrect API key provided: {KEY}. Check it."))
    assert len(fake_llm.requests) == 2  # one per call: no retry


def test_retry_after_parsing() -> None:
    now = 1_700_000_000.0
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(" 1.5 ") == 1.5
    assert retry_after_seconds("Tue, 14 Nov 2023 22:13:40 GMT", now=now) == pytest.approx(20.0)
    assert retry_after_seconds("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0  # in the past
    assert retry_after_seconds("-5") == 0.0
    for useless in (None, "", "soon", "inf", "nan"):
        assert retry_after_seconds(useless) is None


def test_scrub_removes_given_secrets_and_key_shapes() -> None:
    assert scrub("token abc123xyz here", ("abc123xyz",)) == "token [redacted] here"
    assert scrub("bad key sk-ant-api03-ZZZZZZZZZZZZZZZZ") == "bad key [REDACTED:anthropic-key]"


def test_scrub_leaves_a_placeholder_key_alone_and_still_redacts_key_shapes() -> None:
    # A one-letter dummy key for a local server: replacing every "k" would garble the message and break the sk-
    # key the server echoed into pieces no pattern matches.
    echoed = "sk-abcdefghijklmnopqrstuvwxyz"
    message = f"invalid api key: Incorrect API key provided: {echoed} (incomplete chunked read)"
    assert scrub(message, ("Bearer k", "k")) == (
        "invalid api key: Incorrect API key provided: [REDACTED:openai-key] (incomplete chunked read)"
    )


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
def test_a_one_letter_key_does_not_garble_errors(fake_llm: FakeLLM, provider: str) -> None:
    fake_llm.enqueue(Reply.status(401, "invalid api key: sk-abcdefghijklmnopqrstuvwxyz"))
    error = _fail(provider, fake_llm, key="k")
    assert "invalid api key: [REDACTED:openai-key]" in str(error)
    assert "[redacted]" not in str(error) and "abcdefghij" not in str(error)


# --- timeouts and broken connections ----------------------------------------------------------------------------


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed at once: nothing listens there
    error = _fail("openai", f"http://127.0.0.1:{port}/v1", http=HttpSettings(retries=2, backoff=0.01))
    assert f"cannot connect to 127.0.0.1:{port}/v1/chat/completions" in str(error)
    assert "3 attempts" in str(error)


def test_base_url_without_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"invalid URL 'localhost:11434/v1/chat/completions' \(check the base URL\)"):
        _ask("openai", "localhost:11434/v1")


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A port whose listen queue is full: new connections get no answer, so connecting times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.skip("this kernel accepted every connection into the backlog")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_connect_timeout_fires(unaccepting_port: int) -> None:
    error = _fail(
        "openai",
        f"http://127.0.0.1:{unaccepting_port}/v1",
        http=HttpSettings(connect_timeout=0.2, retries=1, backoff=0.01),
    )
    assert "timed out after 0.2 s" in str(error) and "2 attempts" in str(error)


@pytest.mark.parametrize("stream", [True, False])
def test_read_timeout_fires_on_a_silent_server_without_retry(fake_llm: FakeLLM, stream: bool) -> None:
    fake_llm.enqueue(Reply.hang(3600))  # only the read timeout can end this within the pytest timeout
    error = _fail("openai", fake_llm, stream=stream, http=HttpSettings(read_timeout=0.3, retries=2, backoff=0.01))
    assert "read timeout" in str(error)
    assert len(fake_llm.requests) == 1


def test_read_timeout_fires_between_slow_bytes(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.trickle("too slow", interval=2.0))
    error = _fail("anthropic", fake_llm, http=HttpSettings(read_timeout=0.3))
    assert "no data from" in str(error) and "0.3 s (read timeout)" in str(error)


@pytest.mark.parametrize("stream", [True, False])
def test_overall_deadline_stops_an_endless_trickle(fake_llm: FakeLLM, stream: bool) -> None:
    # Bytes every 20 ms never trip the 0.2 s read timeout; the 5 x 0.2 s = 1 s deadline must.
    fake_llm.enqueue(Reply.trickle("x" * 2000, interval=0.02))
    error = _fail("openai", fake_llm, stream=stream, http=HttpSettings(read_timeout=0.2))
    assert "took longer than 1 s" in str(error)


@pytest.mark.parametrize("stream", [True, False])
def test_total_timeout_ends_a_trickle_that_every_other_limit_lets_through(fake_llm: FakeLLM, stream: bool) -> None:
    # Bytes every 20 ms for 40 s: no read timeout fires, and the body deadline (5 x 120 s) is far off.
    fake_llm.enqueue(Reply.trickle("x" * 2000, interval=0.02))
    error = _fail("openai", fake_llm, stream=stream, http=HttpSettings(total_timeout=0.5))
    assert "no complete answer within 0.5 s (http.total_timeout)" in str(error)


def test_total_timeout_starts_no_retry_that_could_not_end_in_time(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(*[Reply.status(503, "busy")] * 4)
    # Backoff 0.4 s then 0.8 s (halved at most by the jitter): the second retry cannot start within 0.5 s.
    error = _fail("openai", fake_llm, http=HttpSettings(retries=3, backoff=0.4, total_timeout=0.5))
    assert "HTTP 503" in str(error) and "gave up: no answer within 0.5 s, http.total_timeout" in str(error)
    assert len(fake_llm.requests) <= 2


def test_total_timeout_cuts_the_read_timeout_to_the_time_left(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.hang(3600))  # only a timeout can end this within the pytest timeout
    error = _fail("anthropic", fake_llm, http=HttpSettings(read_timeout=120.0, total_timeout=0.3))
    waited = re.search(r"sent no response within ([0-9.]+) s \(read timeout\)", str(error))
    assert waited is not None and float(waited.group(1)) <= 0.3


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
def test_stream_split_into_single_bytes_is_parsed_exactly(fake_llm: FakeLLM, provider: str) -> None:
    # Every byte is its own HTTP chunk: line breaks and UTF-8 characters arrive cut in half.
    fake_llm.enqueue(Reply.trickle("héllo wörld ✓ 日本", interval=0.0, bytewise=True))
    completion, pieces = _ask(provider, fake_llm)
    assert completion.text == "héllo wörld ✓ 日本" == "".join(pieces)
    assert completion.complete


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
def test_dropped_stream_raises_with_the_partial_text(fake_llm: FakeLLM, provider: str) -> None:
    fake_llm.enqueue(Reply.drop_after(2, "one two three four five six seven eight"))
    with pytest.raises(ProviderError) as caught:
        _ask(provider, fake_llm)
    error = caught.value
    assert str(error).startswith("stream ended before the answer was complete")
    assert error.partial == "one two three four "
    assert len(fake_llm.requests) == 1  # never retried once text was shown


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
@pytest.mark.parametrize("content_length", [True, False], ids=["short-of-content-length", "json-unfinished"])
def test_json_answer_cut_short_is_retried_like_a_lost_connection(
    fake_llm: FakeLLM, provider: str, content_length: bool
) -> None:
    cut = Reply.drop_after(1, "an answer that never arrives whole", content_length=content_length)
    fake_llm.enqueue(cut, Reply.text("whole at last"))
    completion, pieces = _ask(provider, fake_llm, stream=False)
    assert completion.text == "whole at last" and pieces == ["whole at last"]  # nothing of the cut one delivered
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize("content_length", [True, False], ids=["short-of-content-length", "json-unfinished"])
def test_json_answers_cut_short_spend_the_retry_budget_then_fail_in_one_line(
    fake_llm: FakeLLM, content_length: bool
) -> None:
    fake_llm.enqueue(*[Reply.drop_after(1, "never whole", content_length=content_length)] * 3)
    error = _fail("openai", fake_llm, stream=False, http=HttpSettings(retries=2, backoff=0.01))
    assert len(fake_llm.requests) == 3
    assert "broke off" in str(error) and str(error).endswith("(gave up after 3 attempts)")
    assert "\n" not in str(error) and error.partial == ""


@pytest.mark.parametrize(
    ("raw", "cut"),
    [
        (b"", True),
        (b'{"a": "half a str', True),
        (b'{"a": [1, 2', True),
        (b'{"a": tr', True),
        (b'{"a": 1.', True),
        (b'{"a": "\\u00', True),
        ('{"a": "\u00e9'.encode()[:-1], True),  # a UTF-8 character cut in half
        (b"<html>bad gateway</html>", False),
        (b"hello", False),
        (b'{"a": 1} trailing', False),
        (b'{"a": 1 "b": 2}', False),
    ],
)
def test_only_json_that_ends_unfinished_counts_as_cut_short(raw: bytes, cut: bool) -> None:
    from aicache.providers.http import _cut_short

    assert _cut_short(raw) is cut


def test_trickled_stream_sends_one_character_per_interval(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.trickle("abcd", interval=0.1))
    arrivals: list[str] = []
    request = ProviderRequest(model="m", messages=(Message("user", "q"),), base_url=fake_llm.openai_url, http=FAST)
    completion = OpenAIProvider().complete(request, arrivals.append)
    assert completion.text == "abcd" and arrivals == ["a", "b", "c", "d"]


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
def test_stream_closed_without_final_event_is_incomplete(fake_llm: FakeLLM, provider: str) -> None:
    fake_llm.enqueue(Reply.text("looks whole but is not", finish_reason=None))
    error = _fail(provider, fake_llm)
    assert str(error) == "stream ended before the answer was complete"
    assert error.partial == "looks whole but is not"


def test_ctrl_c_while_streaming_propagates_untouched(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("a b c d e f"))

    def interrupt(_text: str) -> None:
        raise KeyboardInterrupt

    request = ProviderRequest(model="m", messages=(Message("user", "q"),), base_url=fake_llm.openai_url, http=FAST)
    with pytest.raises(KeyboardInterrupt):
        OpenAIProvider().complete(request, interrupt)
    assert len(fake_llm.requests) == 1


def test_a_json_answer_to_a_stream_request_is_an_error(fake_llm: FakeLLM) -> None:
    # A proxy that ignores "stream" and answers JSON must not pass for an empty stream. The fake answers JSON
    # when the body has no "stream": true, so asking for events without it plays that proxy.
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    events = stream_sse(fake_llm.openai_url + "/chat/completions", body, {}, FAST)
    with pytest.raises(ProviderError, match=r"did not answer with an event stream .*'application/json'"):
        list(events)


def test_sse_parser_follows_the_spec_across_chunk_boundaries() -> None:
    parser = SseParser()
    stream = b": comment\r\nevent: delta\r\ndata: line one\r\ndata:line two\r\n\r\ndata: {}\n\ndata: cut off"
    events: list[SseEvent] = []
    for i in range(len(stream)):
        events += parser.feed(stream[i : i + 1])
    assert events == [SseEvent("delta", "line one\nline two"), SseEvent("message", "{}")]


def test_httpx_loads_without_its_command_line_module() -> None:
    code = (
        "import sys, aicache.providers, aicache.providers.openai, aicache.providers.anthropic\n"
        "assert 'httpx' not in sys.modules, 'httpx imported too early'\n"
        "from aicache.providers.http import import_httpx\n"
        "import_httpx()\n"
        "print(sorted(m for m in ('rich', 'click', 'pygments') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- the command provider ---------------------------------------------------------------------------------------


def _script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def _run_command(
    argv: list[str], *, prompt_via: str = "stdin", timeout: float = 10, stream: bool = True, **request: object
) -> tuple[Completion, list[str]]:
    provider = CommandProvider({"argv": argv, "prompt_via": prompt_via, "timeout": timeout})
    fields: dict[str, object] = {"model": "tiny", "messages": (Message("user", "what is 2+2?"),), "stream": stream}
    fields.update(request)
    pieces: list[str] = []
    completion = provider.complete(ProviderRequest(**fields), pieces.append)  # type: ignore[arg-type]
    return completion, pieces


def test_command_reads_the_prompt_on_stdin_and_fills_in_the_model() -> None:
    argv = [*_script("import sys; print('model=' + sys.argv[1] + ' prompt=' + sys.stdin.read())"), "{model}"]
    completion, pieces = _run_command(argv, system="be terse")
    assert completion.text == "model=tiny prompt=be terse\n\nwhat is 2+2?\n"
    assert "".join(pieces) == completion.text
    assert (completion.finish_reason, completion.complete, completion.model) == ("exit_0", True, "tiny")


def test_command_takes_the_prompt_as_last_argument() -> None:
    argv = _script("import sys; print(repr(sys.argv[1:]), sys.stdin.read() == '')")
    completion, _ = _run_command(argv, prompt_via="arg")
    assert completion.text == "['what is 2+2?'] True\n"


def test_command_output_is_streamed_as_it_arrives(tmp_path: Path) -> None:
    # The tool writes its second piece only once the first has been shown (the test creates a file when it
    # receives it): output held back until the tool exits would leave it waiting, and it would say so.
    shown = tmp_path / "first-shown"
    argv = _script(
        f"""
        import os, sys, time
        sys.stdout.write('first '); sys.stdout.flush()
        deadline = time.monotonic() + 60
        while not os.path.exists({str(shown)!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
        sys.stdout.write('second' if os.path.exists({str(shown)!r}) else 'never shown')
        """
    )
    arrivals: list[str] = []

    def show(text: str) -> None:
        arrivals.append(text)
        shown.touch()

    provider = CommandProvider({"argv": argv, "timeout": 120})
    request = ProviderRequest(model="m", messages=(Message("user", "q"),))
    completion = provider.complete(request, show)
    assert completion.text == "first second"
    assert arrivals == ["first ", "second"]


def test_command_without_streaming_delivers_once_and_replaces_bad_utf8() -> None:
    argv = _script("import sys; sys.stdout.buffer.write(b'ok \\xff \\xe2\\x9c\\x93')")
    completion, pieces = _run_command(argv, stream=False)
    assert completion.text == "ok \ufffd ✓"
    assert pieces == [completion.text]


def test_command_failure_reports_status_and_last_stderr_line() -> None:
    argv = _script(
        """
        import sys
        print('half an answer', flush=True)
        sys.stderr.write('starting\\nerror: not logged in\\n\\n')
        sys.exit(3)
        """
    )
    with pytest.raises(ProviderError) as caught:
        _run_command(argv)
    assert str(caught.value).endswith("exited with status 3: error: not logged in")
    assert caught.value.partial == "half an answer\n"


def test_command_that_prints_nothing_is_an_error() -> None:
    with pytest.raises(ProviderError, match="printed nothing"):
        _run_command(_script("pass"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its parent has not reaped it yet


def _wait_dead(pid: int, seconds: float = 60.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


# Both sleep far longer than any wait below, so a process that is gone was killed, not finished.
SLEEPER_WITH_CHILD = """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])
    print(child.pid, flush=True)
    time.sleep(600)
"""


def test_command_timeout_kills_the_whole_process_group() -> None:
    with pytest.raises(ProviderError) as caught:
        _run_command(_script(SLEEPER_WITH_CHILD), timeout=1.0)
    assert "timed out after 1 s" in str(caught.value)
    grandchild = int(caught.value.partial)
    assert _wait_dead(grandchild), "the tool's own child survived the timeout"


def test_ctrl_c_kills_the_command_and_is_reraised() -> None:
    seen: list[str] = []

    def interrupt(text: str) -> None:
        seen.append(text)
        raise KeyboardInterrupt

    provider = CommandProvider({"argv": _script(SLEEPER_WITH_CHILD)})
    with pytest.raises(KeyboardInterrupt):  # the tool sleeps a minute: only killing it returns sooner
        provider.complete(ProviderRequest(model="m", messages=(Message("user", "q"),)), interrupt)
    assert _wait_dead(int(seen[0]))


def test_command_settings_errors_say_how_to_fix_them() -> None:
    request = ProviderRequest(model="m", messages=(Message("user", "q"),))
    with pytest.raises(ConfigError, match=r"aicache config set providers\.command\.argv '\[\"claude\", \"-p\"\]'"):
        get_provider("command", config.load()).complete(request, print)
    with pytest.raises(ConfigError, match="command not found"):
        CommandProvider({"argv": ["/nonexistent/ai-tool"]}).complete(request, print)
    with pytest.raises(ConfigError, match="prompt_via"):
        CommandProvider({"argv": ["true"], "prompt_via": "file"}).complete(request, print)


def test_flatten_prompt_labels_turns_of_a_conversation() -> None:
    turns = (Message("user", "hi"), Message("assistant", "hello"), Message("user", "and?"))
    assert flatten_prompt(None, turns) == "User: hi\n\nAssistant: hello\n\nUser: and?"
    assert flatten_prompt("sys", (Message("user", "q"),)) == "sys\n\nq"


# --- endpoints and keys -----------------------------------------------------------------------------------------


def _settings(**values: str) -> Settings:
    for dotted, raw in values.items():
        config.save_value(dotted.replace("__", "."), raw)
    return config.load()


def test_get_provider_knows_each_provider_and_rejects_others() -> None:
    assert [get_provider(name).name for name in PROVIDERS] == list(PROVIDERS)
    with pytest.raises(ConfigError, match="known providers: openai, anthropic, ollama, command"):
        get_provider("bard")


def test_openai_key_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings()
    assert resolve_endpoint(settings, "openai", None, None) == ("https://api.openai.com/v1", None)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert resolve_endpoint(settings, "openai", None, None)[1] == "sk-from-env"
    credentials.set_key("openai", "sk-from-file")
    assert resolve_endpoint(settings, "openai", None, None)[1] == "sk-from-file"
    assert resolve_endpoint(settings, "openai", None, "sk-from-flag")[1] == "sk-from-flag"


def test_openai_base_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(providers__openai__base_url='"http://config.example/v1"')
    assert resolve_endpoint(settings, "openai", None, None)[0] == "http://config.example/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.example/v1/")
    assert resolve_endpoint(settings, "openai", None, None)[0] == "http://env.example/v1"
    assert resolve_endpoint(settings, "openai", "http://flag.example/v1", None)[0] == "http://flag.example/v1"


def test_stored_and_env_keys_are_not_sent_to_a_custom_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    custom = "https://openrouter.example/api/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    settings = _settings()
    assert resolve_endpoint(settings, "openai", custom, None) == (custom, None)
    credentials.set_key("openai", "sk-file")
    assert resolve_endpoint(settings, "openai", custom, None) == (custom, None)
    assert resolve_endpoint(settings, "openai", "http://api.openai.com/v1", None)[1] is None  # not https
    assert resolve_endpoint(settings, "openai", custom, "sk-flag") == (custom, "sk-flag")

    credentials.set_key(custom + "/", "sk-bound-to-this-url")
    assert resolve_endpoint(settings, "openai", custom, None) == (custom, "sk-bound-to-this-url")
    assert resolve_endpoint(settings, "openai", "https://other.example/v1", None)[1] is None

    opted_in = _settings(providers__openai__send_key_to_custom_base_url="true")
    assert resolve_endpoint(opted_in, "openai", "https://other.example/v1", None)[1] == "sk-file"


def test_env_base_url_and_env_key_set_together_are_paired(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenRouter/vLLM setups export both variables; the user chose to send that key to that URL.
    monkeypatch.setenv("OPENAI_BASE_URL", "https://openrouter.example/api/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert resolve_endpoint(_settings(), "openai", None, None) == ("https://openrouter.example/api/v1", "sk-env")
    # ... and that pair wins over the key file's key, which stays meant for OpenAI itself.
    credentials.set_key("openai", "sk-file")
    assert resolve_endpoint(_settings(), "openai", None, None)[1] == "sk-env"


def test_a_withheld_key_is_explained_with_the_setting_that_would_send_it(monkeypatch: pytest.MonkeyPatch) -> None:
    custom = "http://127.0.0.1:9/v1"
    setting = "set providers.openai.send_key_to_custom_base_url = true"
    assert endpoint(_settings(), "openai", custom, None) == Endpoint(custom)  # no key at all: nothing to explain
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    flag = endpoint(_settings(), "openai", custom, None)
    assert flag.api_key is None and flag.withheld is not None and "\n" not in flag.withheld
    assert flag.withheld.startswith(f"no key sent to {custom}: OPENAI_API_KEY is meant for api.openai.com;")
    assert "export OPENAI_BASE_URL instead of --base-url" in flag.withheld and setting in flag.withheld
    assert "sk-env" not in flag.withheld
    credentials.set_key("openai", "sk-file")
    configured = endpoint(_settings(providers__openai__base_url=f'"{custom}"'), "openai", None, None)
    assert configured.withheld is not None and "the key file's openai key" in configured.withheld
    assert setting in configured.withheld and "--base-url" not in configured.withheld
    for sent in (
        endpoint(_settings(providers__openai__send_key_to_custom_base_url="true"), "openai", custom, None),
        endpoint(_settings(), "openai", custom, "sk-flag"),
        endpoint(_settings(), "openai", None, None),  # the provider's own service
    ):
        assert sent.api_key and sent.withheld is None
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    proxied = endpoint(_settings(providers__anthropic__base_url='"http://proxy.example"'), "anthropic", None, None)
    assert proxied.withheld is not None and "providers.anthropic.send_key_to_custom_base_url" in proxied.withheld


def test_ollama_endpoint_and_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    credentials.set_key("openai", "sk-file")
    settings = _settings()
    assert resolve_endpoint(settings, "ollama", None, None) == ("http://localhost:11434/v1", None)
    for host, expected in [
        ("gpu-box", "http://gpu-box:11434/v1"),
        ("127.0.0.1:9999", "http://127.0.0.1:9999/v1"),
        ("https://ollama.example", "https://ollama.example/v1"),
        ("http://host:1234/v1/", "http://host:1234/v1"),
    ]:
        monkeypatch.setenv("OLLAMA_HOST", host)
        assert resolve_endpoint(settings, "ollama", None, None) == (expected, None)
    assert resolve_endpoint(settings, "ollama", "http://flag:1/", "sk-flag") == ("http://flag:1/v1", "sk-flag")


def test_ollama_host_from_config() -> None:
    settings = _settings(providers__ollama__host='"http://lan-box:8080"')
    assert resolve_endpoint(settings, "ollama", None, None) == ("http://lan-box:8080/v1", None)


def test_anthropic_endpoint_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-env")
    settings = _settings()
    assert resolve_endpoint(settings, "anthropic", None, None) == ("https://api.anthropic.com", "sk-ant-env")
    credentials.set_key("anthropic", "sk-ant-file")
    assert resolve_endpoint(settings, "anthropic", None, None)[1] == "sk-ant-file"
    proxied = _settings(providers__anthropic__base_url='"http://proxy.example"')
    assert resolve_endpoint(proxied, "anthropic", None, None) == ("http://proxy.example", None)


def test_command_and_unknown_providers_have_no_endpoint() -> None:
    settings = _settings()
    assert resolve_endpoint(settings, "command", None, "sk-flag") == (None, None)
    with pytest.raises(ConfigError, match="unknown provider 'bard'"):
        resolve_endpoint(settings, "bard", None, None)


# --- the key file -----------------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_key_file_is_private_from_creation_even_with_an_open_umask(monkeypatch: pytest.MonkeyPatch) -> None:
    # Check the mode the instant each file is created, not only at the end: there must be no window.
    real_open = os.open
    modes_at_creation: list[int] = []

    def spying_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kwargs: object) -> int:
        fd = real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]
        if flags & os.O_CREAT:
            modes_at_creation.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fd

    monkeypatch.setattr(os, "open", spying_open)
    old_umask = os.umask(0)
    try:
        path = credentials.set_key("openai", "sk-secret-value-123456")
    finally:
        os.umask(old_umask)
    assert modes_at_creation == [0o600]
    assert _mode(path) == 0o600
    assert path == credentials.keys_path()
    assert json.loads(path.read_text()) == {"openai": "sk-secret-value-123456"}
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_rewriting_a_loose_key_file_makes_it_private() -> None:
    path = credentials.keys_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"anthropic": "sk-ant-old-key-1234567"}')
    path.chmod(0o644)
    credentials.set_key("openai", "sk-new-key-abcdefghijkl\n")
    assert _mode(path) == 0o600
    assert credentials.get_key("anthropic") == "sk-ant-old-key-1234567"
    assert credentials.get_key("openai") == "sk-new-key-abcdefghijkl"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"openai": 42}'])
def test_corrupt_key_file_is_an_error_and_is_kept(content: str) -> None:
    path = credentials.keys_path()
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(ConfigError, match=str(path)):
        credentials.get_key("openai")
    with pytest.raises(ConfigError, match=str(path)):
        credentials.set_key("openai", "sk-would-overwrite-1234")
    with pytest.raises(ConfigError):
        resolve_endpoint(_settings(), "openai", None, None)
    assert path.read_text() == content


def test_listed_keys_are_masked() -> None:
    credentials.set_key("openai", "sk-proj-abcdefghijklmnop1234")
    credentials.set_key("anthropic", "short-key")
    listed = credentials.list_keys()
    assert listed == {"anthropic": "****", "openai": "sk-...1234"}
    with pytest.raises(UsageError):
        credentials.set_key("openai", "   ")


def test_deleting_a_key() -> None:
    credentials.set_key("openai", "sk-proj-abcdefghijklmnop1234")
    assert credentials.delete_key("openai") is True
    assert credentials.delete_key("openai") is False
    assert credentials.get_key("openai") is None
