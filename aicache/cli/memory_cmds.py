"""``aicache log``, ``aicache show`` and ``aicache stats``: read episodic memory."""

from __future__ import annotations

import time

import typer

from aicache import output

MAX_LIMIT = 2**63 - 1  # SQLite's largest INTEGER: a larger LIMIT cannot be bound (aicache.db stays unimported here)


def _since(days: float | None) -> float | None:
    return time.time() - days * 86400 if days is not None else None


def _positive_days(days: float | None) -> float | None:
    # Zero is refused as `log -n 0` is: "the last 0 days" would always be empty. A fraction is a part of a day.
    if days is not None and not days > 0:  # NaN is refused too
        raise typer.BadParameter(f"{days:g} is not above 0 (0.5 is the last 12 hours)")
    return days


def log(
    query: str = typer.Option(
        None,
        "-q",
        "--query",
        help='Full-text search in questions, answers and errors; FTS5 syntax: "a phrase", pre*, a OR b, a NOT b.',
    ),
    limit: int = typer.Option(20, "-n", "--limit", min=1, max=MAX_LIMIT, help="How many episodes to show."),
    outcome: str = typer.Option(None, "--outcome", help="Only this outcome (exact_hit, miss, error, ...)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (one object with an episodes list)."),
) -> None:
    """List and search recorded episodes, newest first."""
    from aicache import db, memory

    with db.reading() as conn:
        wanted = memory.parse_outcome(outcome) if outcome else None
        episodes = memory.search(conn, query, limit, wanted)
        filtered = bool(query or outcome) and not json_out and memory.count(conn) > 0
    if json_out:
        output.emit_json({"episodes": episodes})
        return
    from aicache import render

    render.episodes_table(episodes, "no episodes match" if filtered else "no episodes yet")


def show(
    episode_id: int = typer.Argument(..., help="Episode id, as shown by `aicache log`."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (the episode and the entry it used)."),
) -> None:
    """One episode in full: question, answer, outcome, timing, tokens, cost and the hit decision's verdicts."""
    from dataclasses import asdict

    from aicache import cache, db, labels, memory
    from aicache.errors import UsageError

    with db.reading() as conn:
        episode = memory.get(conn, episode_id)
        if episode is None:
            raise UsageError(f"no episode {episode_id} (see `aicache log`)")
        entry = cache.get_entry(conn, episode["entry_id"]) if episode.get("entry_id") else None
        marked_wrong = labels.marked_wrong(conn, episode)
    if json_out:
        output.emit_json({"episode": episode, "entry": asdict(entry) if entry else None, "marked_wrong": marked_wrong})
        return
    from aicache import render

    render.episode_detail(episode, entry, marked_wrong)


def stats(
    days: float = typer.Option(
        None, "--days", callback=_positive_days, help="Only the last N days (above 0; 0.5 is the last 12 hours)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Hit rates by kind, time and tokens saved, per model."""
    from dataclasses import asdict

    from aicache import db, memory

    with db.reading() as conn:
        rows = memory.stats(conn, _since(days))
        windowed = days is not None and not json_out and memory.count(conn) > 0
    if json_out:
        output.emit_json({"models": [asdict(r) | {"hit_rate": r.hit_rate} for r in rows]})
        return
    from aicache import render

    empty = "no episodes yet"
    if windowed:
        empty = f"no episodes in the last {days:g} day{'' if days == 1 else 's'}"
    render.stats_table(rows, empty)


def register(app: typer.Typer) -> None:
    app.command()(log)
    app.command()(show)
    app.command()(stats)
