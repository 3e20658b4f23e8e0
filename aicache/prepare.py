"""Turn what the user typed and piped into an ``AskRequest``: decode, bound, combine, redact, resolve.

Combination rule (README "Pipes"): the question is the command-line argument; piped stdin and attached files
form the input, which goes into the prompt (before the question, unless a template places it) and, by hash, into
the partition. With no argument, piped text is itself the question. Secrets are redacted from both before the
request exists, so nothing downstream (provider, store, episode) can see them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from aicache import redact, templates
from aicache.aliases import resolve_model
from aicache.config import Settings
from aicache.errors import UsageError
from aicache.inputs import decode, read_limited, repair_argument
from aicache.normalize import EMPTY_QUESTION, has_content
from aicache.request import AskRequest, Params

if TYPE_CHECKING:
    from aicache.providers import Endpoint


@dataclass(frozen=True)
class RawAsk:
    """The ask as typed: every field straight from the command line or the library caller."""

    question: str
    stdin: bytes | None = None
    attachments: tuple[Path, ...] = ()
    model: str | None = None
    provider: str | None = None
    base_url: str | None = None
    system: str | None = None
    template: str | None = None
    params: Params = ()
    key: str | None = field(default=None, repr=False)  # --key: overrides the key file and the environment


@dataclass(frozen=True)
class Prepared:
    request: AskRequest
    warnings: tuple[str, ...]
    #: the endpoint with the key it may be sent with; called only when a request must be sent (a miss), since
    #: it reads the key file, which a cache hit does not need
    key: Callable[[], Endpoint] = field(repr=False)


def _attachment_text(path: Path, limit: int) -> tuple[str, str | None]:
    try:
        with path.open("rb") as handle:
            data = read_limited(handle, limit, what=str(path))
    except OSError as exc:
        raise UsageError(f"cannot read attachment {path}: {exc.strerror}") from None
    decoded = decode(data, what=str(path))
    return f"File: {path.name}\n{decoded.text}", decoded.warning


def _input_text(raw: RawAsk, limit: int, warnings: list[str]) -> str | None:
    parts: list[str] = []
    if raw.stdin:
        decoded = decode(raw.stdin)
        parts.append(decoded.text)
        if decoded.warning:
            warnings.append(decoded.warning)
    for path in raw.attachments:
        text, warning = _attachment_text(path, limit)
        parts.append(text)
        if warning:
            warnings.append(warning)
    combined = "\n\n".join(p for p in parts if p)
    if len(combined.encode("utf-8")) > limit:
        raise UsageError(f"the input is larger than the {limit:,}-byte limit; nothing was sent")
    return combined or None


def _redacted(text: str | None, extra: tuple[redact.Pattern, ...], warnings: list[str], what: str) -> str | None:
    if text is None:
        return None
    result = redact.redact(text, extra)
    if result.found:
        kinds = ", ".join(sorted(set(result.found)))
        warnings.append(f"redacted {len(result.found)} secret(s) from {what} before sending ({kinds})")
    return result.text


def _endpoint_label(settings: Settings, provider: str, base_url: str | None) -> str | None:
    if provider == "command":
        # Different wrapped tools give different answers: the command line is this provider's "address".
        return "command:" + shlex.join(settings.provider_settings("command").get("argv", []))
    return base_url


def prepare(raw: RawAsk, settings: Settings) -> Prepared:
    """Build the request, and the way to pick the key it may be sent with (``providers.endpoint``)."""
    from aicache.providers import endpoint

    warnings: list[str] = []
    limit = int(settings.get("limits.max_input_bytes", 1_000_000))
    question = repair_argument(raw.question)
    if question.warning:
        warnings.append(question.warning)
    input_text = _input_text(raw, limit, warnings)
    if input_text is not None and not has_content(input_text):
        input_text = None  # blank lines piped in are no input: they must not change the partition
    question_text = question.text.strip()
    if not has_content(question_text):
        # No question, or only spaces, punctuation or invisible characters: piped text, if any, is the question.
        if input_text is None:
            raise UsageError(EMPTY_QUESTION)
        question_text, input_text = input_text.strip(), None
    extra = redact.user_patterns(list(settings.get("redact.patterns", [])))
    provider, model = resolve_model(settings, raw.model, raw.provider)
    base_url = endpoint(settings, provider, raw.base_url, raw.key, stored_keys=False).base_url
    request = AskRequest(
        question=_redacted(question_text, extra, warnings, "the question") or "",
        provider=provider,
        model=model,
        base_url=_endpoint_label(settings, provider, base_url),
        system=_redacted(raw.system, extra, warnings, "the system prompt"),
        input_text=_redacted(input_text, extra, warnings, "the input"),
        template=templates.load(raw.template) if raw.template else None,
        params=tuple(sorted(raw.params)),
    )
    return Prepared(request, tuple(warnings), partial(endpoint, settings, provider, raw.base_url, raw.key))
