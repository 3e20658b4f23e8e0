"""aicache: a local cache in front of your LLM.

The library is the product; the CLI is an adapter over it. ``aicache.ask`` runs exactly what ``aicache ask``
runs (secrets redacted, the key looked up, the cache partition built, one episode recorded)::

    import aicache

    result = aicache.ask("how do I undo the last commit but keep the changes?", model="gpt-4o-mini")
    print(result.answer)
    print(result.outcome)  # "miss" the first time, "exact_hit" when asked again

Its keyword options are the command line's (``provider``, ``base_url``, ``system``, ``template``, ``params``,
``input_text``, ``attachments``, ``key``, ``mode``, ``stream``) plus ``on_text``, which receives the answer as it
streams. Errors are ``AicacheError`` subclasses whose ``exit_code`` is the CLI's.

Submodules are imported lazily so that ``import aicache`` (and the CLI's exact-hit path) stays cheap.
"""

from __future__ import annotations

# Not ``from typing import ...``: typing (and the re it imports) is ~15 ms of an ``ask`` served by the warm
# helper, which imports this package and nothing heavy. Type checkers treat any TYPE_CHECKING as true.
TYPE_CHECKING = False

__version__ = "0.1.0"

__all__ = [
    "AicacheError",
    "AskResult",
    "CacheMode",
    "ExitCode",
    "Outcome",
    "__version__",
    "ask",
]

_LAZY = {
    "AskResult": "aicache.flow",
    "CacheMode": "aicache.flow",
    "ask": "aicache.api",
    "AicacheError": "aicache.errors",
    "ExitCode": "aicache.errors",
    "Outcome": "aicache.memory",
}

if TYPE_CHECKING:
    from typing import Any

    from aicache.api import ask
    from aicache.errors import AicacheError, ExitCode
    from aicache.flow import AskResult, CacheMode
    from aicache.memory import Outcome


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aicache' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
