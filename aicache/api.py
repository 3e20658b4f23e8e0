"""``aicache.ask``: the public entry point, and the one the ``ask`` command and the commit hook call.

Every caller goes through the same three steps, so the library, the CLI and the hook cannot drift apart:

1. ``prepare.prepare``: decode and bound the input, redact secrets from the question, system prompt and input,
   resolve the model, the endpoint and the key it may be sent with, and build the partition;
2. ``flow.ask``: exact tier, semantic tier, provider, store;
3. one episode, always, recorded by the flow.

Nothing here prints: the answer goes to ``on_text`` as it arrives, notes to ``on_note``, warnings to
``on_warning`` (redacted secrets, a withheld key, replaced characters before anything is sent; an answer cut
short, a store that could not keep the answer or record the episode after), and the warnings are all in the
returned ``AskResult``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aicache.errors import UsageError

if TYPE_CHECKING:
    import sqlite3

    from aicache.config import Settings
    from aicache.flow import AskResult, CacheMode

TextSink = Callable[[str], None]
ParamValue = float | int


def _ignore(_text: str) -> None:
    return None


# Token limits every provider wants as a whole number of at least 1 (OpenAI, Anthropic, Ollama's OpenAI API).
_TOKEN_LIMITS = frozenset({"max_tokens", "max_completion_tokens"})


def param_problem(name: str, value: object) -> str | None:
    """Why sampling parameter ``name`` cannot be sent with ``value`` ("must be ..."), or None when it can.

    NaN and infinities are not JSON (Python would write ``NaN``, which every provider refuses), and a token limit
    below 1 is refused by every provider; any other finite number is sent as given, the provider's ranges differ.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, not {value!r}"
    if not math.isfinite(value):
        return f"must be a finite number, not {value}"
    if name in _TOKEN_LIMITS and (value < 1 or not float(value).is_integer()):
        return f"must be a whole number of at least 1, not {value}"
    return None


def _params(params: object) -> tuple[tuple[str, ParamValue], ...]:
    expected = "params must be a mapping of names to numbers, such as {'temperature': 0}"
    if isinstance(params, Mapping):
        pairs = tuple(params.items())
    elif isinstance(params, str | bytes) or not isinstance(params, Iterable):  # "temperature=0" is not pairs
        raise UsageError(f"{expected}, not {type(params).__name__}")
    else:
        pairs = tuple(params)
        if not all(isinstance(pair, tuple) and len(pair) == 2 for pair in pairs):
            raise UsageError(f"{expected} (or a list of (name, number) pairs)")
    for name, value in pairs:
        if not isinstance(name, str):
            raise UsageError(f"{expected}: a name is {type(name).__name__}, not str")
        if problem := param_problem(name, value):
            raise UsageError(f"sampling parameter {name} {problem}")
    return pairs


def _optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{name} must be a str or None, not {type(value).__name__}")
    return value


def _flag(name: str, value: object) -> bool | None:
    # "no" or 0 would be taken as true or false by their truth value, not by what the caller meant.
    if value is not None and not isinstance(value, bool):
        raise UsageError(f"{name} must be True, False or None, not {type(value).__name__}")
    return value


def _question(question: object) -> str:
    if not isinstance(question, str):
        raise UsageError(f"question must be a str, not {type(question).__name__}")
    return question


def _attachments(attachments: object) -> tuple[Path, ...]:
    # One path given alone is one attachment, not a list of its letters.
    if isinstance(attachments, str | os.PathLike):
        attachments = (attachments,)
    if isinstance(attachments, bytes) or not isinstance(attachments, Iterable):
        raise UsageError(f"attachments must be a path or a list of paths, not {type(attachments).__name__}")
    found = tuple(attachments)
    for item in found:
        if not isinstance(item, str | os.PathLike):
            raise UsageError(f"attachments must be a path or a list of paths, not a list holding {item!r}")
    return tuple(Path(item) for item in found)


def _input_bytes(input_text: str | bytes | None) -> bytes | None:
    if input_text is None or isinstance(input_text, bytes):
        return input_text
    if not isinstance(input_text, str):
        raise UsageError(f"input_text must be a str or bytes, not {type(input_text).__name__}")
    # Lone surrogates survive as bytes that are not UTF-8: prepare replaces them and says so, as for stdin.
    return input_text.encode("utf-8", "surrogatepass")


def _mode(mode: CacheMode | str) -> CacheMode:
    from aicache.flow import CacheMode

    try:
        return CacheMode(mode)
    except ValueError:
        known = ", ".join(m.value for m in CacheMode)
        raise UsageError(f"unknown cache mode {mode!r}; known modes: {known}") from None


def ask(
    question: str,
    *,
    model: str | None = None,
    provider: str | None = None,
    base_url: str | None = None,
    system: str | None = None,
    template: str | None = None,
    params: Mapping[str, ParamValue] | Iterable[tuple[str, ParamValue]] = (),
    input_text: str | bytes | None = None,
    attachments: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = (),
    key: str | None = None,
    mode: CacheMode | str = "normal",
    stream: bool | None = None,
    on_text: TextSink | None = None,
    on_note: TextSink | None = None,
    on_warning: TextSink | None = None,
    settings: Settings | None = None,
    conn: sqlite3.Connection | None = None,
    source: str = "library",
    cwd: str | Path | None = None,
) -> AskResult:
    """Answer ``question`` from the cache or the provider, exactly as ``aicache ask`` does.

    The options are the command line's: ``model`` (a name or an alias), ``provider``, ``base_url``, ``system``,
    ``template``, ``params`` (sampling parameters such as ``{"temperature": 0}``), ``input_text`` (what would be
    piped on stdin), ``attachments`` (a list of file paths, or one path), ``key`` (overrides the key file and the
    environment), ``mode`` (``"normal"``, ``"refresh"``, ``"no_cache"`` or ``"cache_only"``) and ``stream`` (the
    ``stream`` setting when not given). ``settings`` and ``conn`` default to the config file and the store under
    ``AICACHE_HOME``; a connection opened here is closed before returning.

    Raises an ``AicacheError`` subclass whose ``exit_code`` is what the CLI would exit with: ``UsageError`` for an
    empty question, an option of the wrong type (``model``, ``provider``, ``base_url``, ``system``, ``template``
    and ``key`` a str or None, ``params`` a mapping of str to numbers, ``stream`` a bool or None, the question,
    ``input_text``, ``attachments``), binary or oversized input, a sampling parameter that is not a finite number
    or a ``max_tokens`` below 1 (see ``param_problem``), ``ConfigError``, ``ProviderError``, ``CacheMissError``
    (``cache_only``), ``StoreError``. An episode is recorded for every outcome but a refused request, and but a
    store that cannot be written once the answer is there: the answer is then returned with a warning and
    ``episode_id`` None.
    """
    from aicache import config, db
    from aicache.flow import AskContext
    from aicache.flow import ask as run_flow
    from aicache.prepare import RawAsk, prepare

    raw = RawAsk(
        question=_question(question),
        stdin=_input_bytes(input_text),
        attachments=_attachments(attachments),
        model=_optional_str("model", model),
        provider=_optional_str("provider", provider),
        base_url=_optional_str("base_url", base_url),
        system=_optional_str("system", system),
        template=_optional_str("template", template),
        params=_params(params),
        key=_optional_str("key", key),
    )
    stream = _flag("stream", stream)
    cache_mode = _mode(mode)
    settings = settings if settings is not None else config.load()  # after the checks: a wrong type is named first
    prepared = prepare(raw, settings)
    for warning in prepared.warnings:
        (on_warning or _ignore)(warning)
    connection = conn if conn is not None else db.connect()
    try:
        ctx = AskContext(
            settings=settings,
            conn=connection,
            key=prepared.key,
            stream=bool(settings.get("stream", True)) if stream is None else stream,
            mode=cache_mode,
            source=source,
            cwd=Path(cwd) if cwd is not None else Path.cwd(),
            on_note=on_note or _ignore,
            on_warning=on_warning or _ignore,
        )
        result = run_flow(prepared.request, ctx, on_text or _ignore)
    finally:
        if conn is None:
            connection.close()
    return dataclasses.replace(result, warnings=prepared.warnings + result.warnings)
