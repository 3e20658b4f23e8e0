"""OpenAI-compatible ``POST {base_url}/chat/completions``: OpenAI, Ollama, vLLM, llama.cpp, LM Studio, OpenRouter.

One provider class serves every server that speaks this protocol; only its name ("openai" or "ollama") and
default base URL differ. The request's ``params`` (temperature, top_p, max_tokens, seed, ...) go into the body
as given. Streaming asks for ``stream_options.include_usage`` so token counts arrive in the last chunk.

An answer is complete when the server says why it stopped (``finish_reason``). A stream that ends without one,
whether cut off or closed early, is a ``ProviderError`` carrying the text already shown, never a short answer
passed off as whole. Once ``finish_reason`` has arrived the answer is whole, so losing the connection before
the usage chunk or ``[DONE]`` costs only the token counts. ``finish_reason="length"`` is returned as it is;
``Completion.complete`` tells the caller not to cache it.
"""

from __future__ import annotations

from typing import Any

from aicache.errors import ProviderError
from aicache.providers import http, require_key
from aicache.providers.base import Completion, ProviderRequest, TextSink

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider:
    """Chat completions over HTTP, JSON or server-sent events."""

    def __init__(self, name: str = "openai", default_base_url: str = DEFAULT_BASE_URL) -> None:
        self.name = name
        self.default_base_url = default_base_url

    def complete(self, request: ProviderRequest, on_text: TextSink) -> Completion:
        base_url = (request.base_url or self.default_base_url).rstrip("/")
        require_key(self.name, base_url, request.api_key)
        url = base_url + "/chat/completions"
        headers = {} if request.api_key is None else {"authorization": f"Bearer {request.api_key}"}
        body = request_body(request)
        if request.stream:
            return _stream(url, body, headers, request, on_text)
        return _from_json(http.post_json(url, body, headers, request.http), request, on_text)


def request_body(request: ProviderRequest) -> dict[str, Any]:
    """The JSON body for ``request``: system prompt first, then the conversation, params, stream flags."""
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [{"role": m.role, "content": m.content} for m in request.messages]
    body: dict[str, Any] = {"model": request.model, "messages": messages, **dict(request.params)}
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _from_json(data: dict[str, Any], request: ProviderRequest, on_text: TextSink) -> Completion:
    if "error" in data:  # some compatible servers answer errors with HTTP 200
        raise ProviderError(f"the server returned an error: {http.server_message(data)}")
    choice = _first_choice(data)
    if choice is None:
        raise ProviderError(f"unexpected answer from the server, no choices: {http.server_message(data)}")
    message = choice.get("message") or {}
    content = message.get("content")
    text = content if isinstance(content, str) else ""  # null when the model refused or called a tool
    if text:
        on_text(text)
    tokens_in, tokens_out = _usage(data)
    return Completion(
        text=text,
        finish_reason=str(choice.get("finish_reason") or "unknown"),
        model=str(data.get("model") or request.model),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
    )


class _Progress(http.StreamProgress):
    """What a stream has delivered so far."""

    def feed(self, event: http.SseEvent, on_text: TextSink) -> bool:
        """Take one event; return True at ``[DONE]``."""
        if event.data.strip() == "[DONE]":
            return True
        chunk = event.json_object()
        if "error" in chunk:  # OpenRouter and vLLM report failures mid-stream this way
            raise ProviderError(f"the server reported an error mid-stream: {http.server_message(chunk)}")
        self.model = self.model or chunk.get("model")
        if isinstance(chunk.get("usage"), dict):
            self.tokens_in, self.tokens_out = _usage(chunk)
        choice = _first_choice(chunk)
        if choice is not None:
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str) and content:
                self.pieces.append(content)
                on_text(content)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return False


def _stream(
    url: str, body: dict[str, Any], headers: dict[str, str], request: ProviderRequest, on_text: TextSink
) -> Completion:
    return http.collect_stream(url, body, headers, request, _Progress(), on_text)


def _first_choice(data: dict[str, Any]) -> dict[str, Any] | None:
    choices = data.get("choices")
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _usage(data: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
