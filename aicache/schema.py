"""Every documented setting: its type, its range or choices, its default and what it does.

One table, read by ``config set`` (which refuses a bad value before writing it), by ``config.load`` (which refuses
a bad value in the file, or in ``AICACHE_MODEL``/``AICACHE_PROVIDER``, before any command uses it), and by
``config show``. A check turns a value into an error message naming the rule ("must be a number from 0 to 1"),
never into a guess: a setting read as something else would fail later, far from its cause.

Names are TOML dotted keys; ``*`` stands for a name the user chooses (``aliases.fast``, ``prices."gpt-4o".input``).
A name in the file that matches nothing here is unknown: ``config set`` refuses it (a typo would otherwise be
stored and ignored), while ``config.load`` only warns, so a file written by a newer aicache still works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

#: the providers aicache speaks to (``-p``, ``provider``, ``judge.provider``, ``hook.provider``)
PROVIDERS = ("openai", "anthropic", "ollama", "command")
#: the providers that take a stored or environment key (``aicache keys set``)
KEYED_PROVIDERS = ("openai", "anthropic")

Check = Callable[[Any], str | None]  # None when the value is fine, else what it must be


@dataclass(frozen=True)
class Setting:
    name: str  # dotted, with * for a user-chosen name
    check: Check
    default: Any  # None: unset unless the user sets it (``default_text`` says what applies then)
    help: str
    default_text: str = ""
    follows: str = ""  # unset, it takes the value in effect of this other setting (``hook.model`` -> ``model``)

    @cached_property  # read for every name of the file on every load: split once
    def parts(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))

    @property
    def shown_default(self) -> str:
        if self.default_text or self.default is None:
            return self.default_text
        return self.default if isinstance(self.default, str) else format_value(self.default)


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _number(
    low: float | None = None, high: float | None = None, *, integer: bool = False, above: bool = False
) -> Check:
    kind = "a whole number" if integer else "a number"
    if low is not None and high is not None:
        rule = f"{kind} from {low:g} to {high:g}"
    elif low is not None:
        rule = f"{kind} above {low:g}" if above else f"{kind} of at least {low:g}"
    else:
        rule = kind

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            return f"must be {rule}"
        if value != value or (low is not None and (value <= low if above else value < low)):  # NaN fails too
            return f"must be {rule}"
        return f"must be {rule}" if high is not None and value > high else None

    return check


def _choice(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def _url(value: Any) -> str | None:
    from urllib.parse import urlsplit

    if not isinstance(value, str):
        return "must be an http:// or https:// URL"
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "must be an http:// or https:// URL"
    return None if parts.scheme in ("http", "https") and parts.hostname else "must be an http:// or https:// URL"


def _strings(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    return None if ok else 'must be a list of strings, e.g. ["claude", "-p"]'


def _regexes(value: Any) -> str | None:
    import re

    if _strings(value) is not None:
        return 'must be a list of regular expressions, e.g. ["ACME-[0-9]{6}"]'
    for number, expression in enumerate(value):
        try:
            re.compile(expression)
        except re.error as exc:
            return f"must hold valid regular expressions; item {number} ({expression!r}) is not: {exc}"
    return None


_POSITIVE = _number(0, above=True)
_COUNT = _number(1, integer=True)

# A fixed default is written here, so that `config get` and `config show` print it; the code's own fallbacks
# (tier.CANDIDATES, index.EF_SEARCH, index.EXACT_MAX, decide.DEFAULT_KIND) are the same values, pinned by a test.
# A default worked out at run time (the calibrated threshold, the shipped model) is None with a text saying how.
SETTINGS: tuple[Setting, ...] = (
    Setting("provider", _choice(*PROVIDERS), "openai", "provider for models not named by an alias or -p"),
    Setting("model", _text, "gpt-4o-mini", "model when -m is not given (env AICACHE_MODEL)"),
    Setting("stream", _boolean, True, "stream answers as they arrive"),
    Setting("providers.openai.base_url", _url, "https://api.openai.com/v1", "OpenAI-compatible endpoint"),
    Setting("providers.openai.send_key_to_custom_base_url", _boolean, False, "send the OpenAI key to another URL"),
    Setting("providers.anthropic.base_url", _url, "https://api.anthropic.com", "Anthropic endpoint"),
    Setting("providers.anthropic.max_tokens", _COUNT, 4096, "max_tokens sent to Anthropic (it requires one)"),
    Setting("providers.anthropic.send_key_to_custom_base_url", _boolean, False, "send the key to another URL"),
    Setting("providers.ollama.host", _text, "http://localhost:11434", "Ollama server (env OLLAMA_HOST)"),
    Setting("providers.command.argv", _strings, [], "the AI CLI to run, {model} replaced by the model"),
    Setting("providers.command.prompt_via", _choice("stdin", "arg"), "stdin", "how the command gets the prompt"),
    Setting("providers.command.timeout", _POSITIVE, 300, "seconds before the command is killed"),
    Setting("aliases.*", _text, None, 'a name for -m: "model" or "provider/model"'),
    Setting("prices.*.input", _number(0), None, "USD per million input tokens of that model"),
    Setting("prices.*.output", _number(0), None, "USD per million output tokens of that model"),
    Setting("http.connect_timeout", _POSITIVE, 5.0, "seconds to connect"),
    Setting("http.read_timeout", _POSITIVE, 120.0, "seconds between bytes of an answer"),
    Setting("http.retries", _number(0, integer=True), 3, "extra attempts on connection errors, 408, 429, 5xx"),
    Setting("http.backoff", _number(0), 0.5, "first wait between attempts, in seconds, doubled each time"),
    Setting("http.max_retry_after", _number(0), 30.0, "longest Retry-After honoured, in seconds"),
    Setting("http.total_timeout", _POSITIVE, None, "seconds a whole request may take, retries included"),
    Setting("limits.max_input_bytes", _COUNT, 1_000_000, "largest piped or attached input"),
    Setting("cache.semantic", _boolean, True, "look up similar questions after an exact miss"),
    Setting("cache.threshold", _number(0, 1), None, "lowest similarity a candidate needs", "the decision's"),
    Setting("cache.candidates", _COUNT, 5, "nearest questions checked per lookup"),
    Setting("cache.exact_scan_max", _number(0, integer=True), 2000, "partitions up to this scan SQLite"),
    Setting("cache.embedding_model", _text, None, "a local sentence-transformers directory", "all-MiniLM-L6-v2"),
    Setting("decision.kind", _choice("model", "rules"), "model", "what decides a semantic hit"),
    Setting("decision.threshold", _number(0, 1), None, "the hit decision's operating point", "calibrated"),
    Setting("decision.answers", _boolean, True, "judge entries stored with their answer by the model that reads it"),
    Setting("decision.directory", _text, None, "a decision model directory (make model --out)", "the shipped one"),
    Setting("decision.model", _text, None, "the decision model version decision.threshold was learned for"),
    Setting(
        "decision.answer_threshold",
        _number(0, 1),
        None,
        "operating point of the model reading the answer",
        "calibrated",
    ),
    Setting("decision.answer_model", _text, None, "the answer model version decision.answer_threshold was learned for"),
    Setting("decision.templates.*.threshold", _number(0, 1), None, "operating point for one template's asks"),
    Setting("index.ef_search", _COUNT, 64, "HNSW search breadth (recall against speed)"),
    Setting("learn.max_wrong", _number(0.0001, 0.5), 0.01, "budget on wrong answers, as a 95% upper bound"),
    Setting("learn.shadow_rate", _number(0, 1), 0.0, "share of semantic lookups checked by the judge afterwards"),
    Setting("judge.enabled", _boolean, False, "ask an LLM about refusals in the gray zone"),
    Setting("judge.model", _text, "gpt-4o-mini", "the judge's model"),
    Setting("judge.provider", _choice(*PROVIDERS), None, "the judge's provider", "from judge.model"),
    Setting("judge.max_candidates", _COUNT, 1, "candidates the judge sees per lookup"),
    Setting("judge.timeout", _POSITIVE, 10.0, "seconds a judge's ruling may take; past it, the answer is NO"),
    Setting("judge.gray_zone", _number(0, 1), 0.45, "how far below the operating point a refusal goes to the judge"),
    Setting("hook.timeout", _POSITIVE, 5.0, "seconds the commit hook may take"),
    Setting("hook.max_diff_bytes", _COUNT, 32_000, "staged diff sent by the commit hook"),
    Setting("hook.template", _text, "commit-message", "template of the commit hook"),
    Setting("hook.model", _text, None, "the commit hook's model", "model", follows="model"),
    Setting("hook.provider", _choice(*PROVIDERS), None, "the commit hook's provider", "from hook.model"),
    Setting("redact.patterns", _regexes, [], "extra secret patterns (Python regexes)"),
    Setting("helper.enabled", _boolean, True, "keep a warm helper process (env AICACHE_HELPER=0 turns it off)"),
    Setting("helper.idle_minutes", _COUNT, 30, "minutes the helper waits for a request before it exits"),
)


def format_value(value: Any) -> str:
    """A value as it would be written in the TOML file (strings quoted)."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(item) for item in value) + "]"  # on one line, as people write them
    import tomli_w

    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def dotted(parts: Iterable[str]) -> str:
    """``prices."gpt-4.1".input``: a name as TOML spells it, quoting parts that are not bare keys."""
    import json

    bare = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    return ".".join(part if part and set(part) <= bare else json.dumps(part) for part in parts)


def parse_name(name: str) -> tuple[str, ...]:
    """The parts of a dotted name written as in TOML (``prices."gpt-4.1".input``); ValueError if it is not one."""
    import tomllib

    try:
        node: Any = tomllib.loads(f"{name} = 0")
    except tomllib.TOMLDecodeError:
        raise ValueError(f"invalid setting name: {name!r}") from None
    parts = []
    while isinstance(node, dict):
        (key, node), *_ = node.items()
        parts.append(key)
    return tuple(parts)


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    return len(pattern) == len(parts) and all(p in ("*", q) for p, q in zip(pattern, parts, strict=True))


# Indexes, because every name in the file is looked up on every load (a command's start-up).
_EXACT = {s.parts: s for s in SETTINGS if "*" not in s.parts}
_PATTERNS = tuple(s for s in SETTINGS if "*" in s.parts)
_SECTIONS = frozenset(s.parts[:n] for s in _EXACT.values() for n in range(1, len(s.parts)))


def find(parts: tuple[str, ...]) -> Setting | None:
    """The setting a name stands for, if it is one."""
    found = _EXACT.get(parts)
    return found if found is not None else next((s for s in _PATTERNS if _matches(s.parts, parts)), None)


def is_section(parts: tuple[str, ...]) -> bool:
    """Whether ``parts`` names a table that holds settings (``cache``, ``providers.openai``, ``prices."x"``)."""
    return parts in _SECTIONS or any(
        len(s.parts) > len(parts) and _matches(s.parts[: len(parts)], parts) for s in _PATTERNS
    )


def suggest(parts: tuple[str, ...]) -> str:
    """A hint for an unknown name: the closest documented one, if any is close."""
    import difflib

    names = [s.name for s in SETTINGS if "*" not in s.name]
    close = difflib.get_close_matches(".".join(parts), names, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else "; `aicache config show` lists every setting"


def validate(tree: dict[str, Any], where: str) -> tuple[list[str], str | None]:
    """Check every value in ``tree`` (a parsed config file). Returns the unknown names, and the first error as a
    one-line message naming the setting and ``where`` (or None)."""
    unknown: list[str] = []

    def walk(node: dict[str, Any], prefix: tuple[str, ...]) -> str | None:
        for key, value in node.items():
            parts = (*prefix, key)
            setting = find(parts)
            if setting is not None:
                if (problem := setting.check(value)) is not None:
                    return f"{dotted(parts)} in {where} {problem}, not {format_value(value)}"
            elif is_section(parts):
                if not isinstance(value, dict):
                    return f"{dotted(parts)} in {where} must be a table of settings, not {format_value(value)}"
                if (problem := walk(value, parts)) is not None:
                    return problem
            else:
                unknown.append(dotted(parts))
        return None

    return unknown, walk(tree, ())
