"""Anthropic Messages API: ``POST {base_url}/v1/messages``.

The system prompt travels as the top-level ``system`` field, and ``max_tokens`` is mandatory: it comes from the
request's params, else from ``providers.anthropic.max_tokens``. Other params (temperature, top_p, top_k, ...)
are passed through; the API rejects ones it does not know with a 400 whose message names them.

Streaming events: ``message_start`` (input tokens), ``content_block_delta`` with a ``text_delta`` (the text),
``message_delta`` (``stop_reason`` and output tokens), ``message_stop`` (the end), ``ping`` (ignored) and
``error`` (a ``ProviderError``). As with OpenAI, the answer is complete once ``stop_reason`` has arrived; a
stream without it is a ``ProviderError`` carrying the text already shown.
"""

from __future__ import annotations

from typing import Any

from aicache.errors import ProviderError
from aicache.providers import http, require_key
from aicache.providers.base import Completion, ProviderRequest, TextSink

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


class AnthropicProvider:
    """Claude models over the Messages API, JSON or server-sent events."""

    name = "anthropic"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = max_tokens

    def complete(self, request: ProviderRequest, on_text: TextSink) -> Completion:
        require_key(self.name, request.base_url or DEFAULT_BASE_URL, request.api_key)
        url = messages_url(request.base_url or DEFAULT_BASE_URL)
        headers = {"anthropic-version": API_VERSION}
        if request.api_key is not None:
            headers["x-api-key"] = request.api_key
        body = self.request_body(request)
        if request.stream:
            return _stream(url, body, headers, request, on_text)
        return _from_json(http.post_json(url, body, headers, request.http), request, on_text)

    def request_body(self, request: ProviderRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"max_tokens": self.max_tokens, **dict(request.params)}
        max_tokens = params["max_tokens"]
        if isinstance(max_tokens, float) and max_tokens.is_integer():
            params["max_tokens"] = int(max_tokens)  # the API wants an integer; "1000.0" would be refused
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            **params,
        }
        if request.system:
            body["system"] = request.system
        if request.stream:
            body["stream"] = True
        return body


def messages_url(base_url: str) -> str:
    """``{base}/v1/messages``, accepting a base URL given with or without its ``/v1``."""
    base = base_url.rstrip("/")
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


def _from_json(data: dict[str, Any], request: ProviderRequest, on_text: TextSink) -> Completion:
    if data.get("type") == "error":
        raise ProviderError(f"the server returned an error: {http.server_message(data)}")
    blocks = data.get("content")
    if not isinstance(blocks, list):
        raise ProviderError(f"unexpected answer from the server, no content: {http.server_message(data)}")
    text = "".join(
        b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    )
    if text:
        on_text(text)
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Completion(
        text=text,
        finish_reason=str(data.get("stop_reason") or "unknown"),
        model=str(data.get("model") or request.model),
        tokens_in=_int(usage.get("input_tokens")),
        tokens_out=_int(usage.get("output_tokens")),
    )


class _Progress(http.StreamProgress):
    """What a stream has delivered so far."""

    def feed(self, event: http.SseEvent, on_text: TextSink) -> bool:
        """Take one event; return True at ``message_stop``."""
        data = event.json_object()
        kind = data.get("type") or event.event
        if kind == "error":  # e.g. overloaded_error after the stream has started
            raise ProviderError(f"the server reported an error mid-stream: {http.server_message(data)}")
        if kind == "message_start":
            message = data.get("message") or {}
            self.model = message.get("model")
            self.tokens_in = _int((message.get("usage") or {}).get("input_tokens"))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
                self.pieces.append(delta["text"])
                on_text(delta["text"])
        elif kind == "message_delta":
            if (data.get("delta") or {}).get("stop_reason"):
                self.finish_reason = str(data["delta"]["stop_reason"])
            output_tokens = _int((data.get("usage") or {}).get("output_tokens"))
            self.tokens_out = output_tokens if output_tokens is not None else self.tokens_out
        return kind == "message_stop"


def _stream(
    url: str, body: dict[str, Any], headers: dict[str, str], request: ProviderRequest, on_text: TextSink
) -> Completion:
    return http.collect_stream(url, body, headers, request, _Progress(), on_text)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
