"""``aicache complete KIND``: values the static completion scripts cannot know (models, templates).

Hidden from help: the scripts in ``completions/`` call it when Tab is pressed after ``-m`` or ``-t``.
"""

from __future__ import annotations

import typer


def complete(kind: str = typer.Argument(..., help="models or templates.")) -> None:
    """Print the values a shell can complete for KIND, one per line."""
    from aicache.completions import dynamic_values
    from aicache.errors import UsageError

    if kind not in ("models", "templates"):
        raise UsageError(f"cannot complete {kind!r}: models or templates")
    for value in dynamic_values(kind):
        print(value)


def register(app: typer.Typer) -> None:
    app.command(hidden=True)(complete)
