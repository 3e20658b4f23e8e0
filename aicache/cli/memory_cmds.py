"""``aicache log`` and ``aicache stats``: read episodic memory."""

from __future__ import annotations

import time

import typer

from aicache import output


def _since(days: float | None) -> float | None:
    return time.time() - days * 86400 if days is not None else None


def log(
    query: str = typer.Option(None, "-q", "--query", help="Full-text search in questions, answers and errors."),
    limit: int = typer.Option(20, "-n", "--limit", min=1, help="How many episodes to show."),
    outcome: str = typer.Option(None, "--outcome", help="Only this outcome (exact_hit, miss, error, ...)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (one object with an episodes list)."),
) -> None:
    """List and search recorded episodes, newest first."""
    from aicache import db, memory

    wanted = memory.parse_outcome(outcome) if outcome else None
    episodes = memory.search(db.connect(), query, limit, wanted)
    if json_out:
        output.emit_json({"episodes": episodes})
        return
    from aicache import render

    render.episodes_table(episodes)


def stats(
    days: float = typer.Option(None, "--days", help="Only the last N days."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Hit rates by kind, time and tokens saved, per model."""
    from dataclasses import asdict

    from aicache import db, memory

    rows = memory.stats(db.connect(), _since(days))
    if json_out:
        output.emit_json({"models": [asdict(r) | {"hit_rate": r.hit_rate} for r in rows]})
        return
    from aicache import render

    render.stats_table(rows)


def register(app: typer.Typer) -> None:
    app.command()(log)
    app.command()(stats)
