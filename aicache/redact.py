"""Redact secrets before anything is sent to a provider or stored.

The patterns live in ``aicache/data/redact.toml`` (documented there and in the README); users add their own as
plain regular expressions under ``redact.patterns`` in the config. A secret is replaced by
``[REDACTED:<pattern name>]``, so the model still sees that something was there and the replacement is stable:
the same input always redacts to the same text, which keeps cache keys stable too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from aicache.errors import ConfigError
from aicache.paths import PACKAGE_DATA


@dataclass(frozen=True)
class Pattern:
    name: str
    source: str
    hints: tuple[str, ...] = ()  # lower-case substrings every match contains; none present: skip the pattern

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.source)  # re caches compiled patterns, so this compiles once per process

    def may_match(self, lowered: str) -> bool:
        return not self.hints or any(hint in lowered for hint in self.hints)


@dataclass(frozen=True)
class Redaction:
    text: str
    found: tuple[str, ...]  # names of the patterns that matched, one per secret


@cache
def builtin_patterns() -> tuple[Pattern, ...]:
    import tomllib

    raw = (PACKAGE_DATA / "redact.toml").read_text(encoding="utf-8")
    return tuple(Pattern(p["name"], p["regex"], tuple(p.get("hints", ()))) for p in tomllib.loads(raw)["pattern"])


def user_patterns(expressions: list[str]) -> tuple[Pattern, ...]:
    compiled = []
    for number, expression in enumerate(expressions, start=1):
        try:
            re.compile(expression)
            compiled.append(Pattern(f"custom-{number}", expression))
        except re.error as exc:
            raise ConfigError(f"redact.patterns[{number - 1}] is not a valid regex: {exc}") from None
    return tuple(compiled)


def redact(text: str, extra: tuple[Pattern, ...] = ()) -> Redaction:
    found: list[str] = []
    lowered = text.lower()
    for pattern in builtin_patterns() + extra:
        if not pattern.may_match(lowered):
            continue

        def replace(match: re.Match[str], name: str = pattern.name) -> str:
            found.append(name)
            if "secret" not in match.re.groupindex or match.group("secret") is None:
                return f"[REDACTED:{name}]"
            # Keep what surrounds the secret ("DB_PASSWORD=") so the text still reads as it did.
            offset = match.start()
            start, end = match.start("secret") - offset, match.end("secret") - offset
            return match.group(0)[:start] + f"[REDACTED:{name}]" + match.group(0)[end:]

        text = pattern.regex.sub(replace, text)
    return Redaction(text, tuple(found))
