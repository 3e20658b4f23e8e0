"""aicache: a local cache in front of your LLM.

The library is the product; the CLI is an adapter over it::

    from aicache import AskContext, AskRequest, ask, config, db
    ctx = AskContext(settings=config.load(), conn=db.connect())
    result = ask(AskRequest(question="undo last commit", provider="openai", model="gpt-4o-mini"), ctx, print)

Submodules are imported lazily so that ``import aicache`` (and the CLI's exact-hit path) stays cheap.
"""

from __future__ import annotations

# Not ``from typing import ...``: typing (and the re it imports) is ~15 ms of an ``ask`` served by the warm
# helper, which imports this package and nothing heavy. Type checkers treat any TYPE_CHECKING as true.
TYPE_CHECKING = False

__version__ = "0.1.0"

__all__ = [
    "AicacheError",
    "AskContext",
    "AskRequest",
    "AskResult",
    "CacheMode",
    "ExitCode",
    "__version__",
    "ask",
]

_LAZY = {
    "AskContext": "aicache.flow",
    "AskResult": "aicache.flow",
    "CacheMode": "aicache.flow",
    "ask": "aicache.flow",
    "AskRequest": "aicache.request",
    "AicacheError": "aicache.errors",
    "ExitCode": "aicache.errors",
}

if TYPE_CHECKING:
    from typing import Any

    from aicache.errors import AicacheError, ExitCode
    from aicache.flow import AskContext, AskResult, CacheMode, ask
    from aicache.request import AskRequest


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aicache' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
