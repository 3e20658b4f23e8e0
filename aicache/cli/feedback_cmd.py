"""``aicache feedback [EPISODE] good|bad``: say whether an answer was right, for the negative list and ``learn``."""

from __future__ import annotations

from pathlib import Path

import typer

from aicache import output


def feedback(
    words: list[str] = typer.Argument(
        ...,
        metavar="[EPISODE] good|bad",
        help="Episode id (default: the newest asked in this directory), then good or bad.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Mark an answer right or wrong. A wrong hit is never served again for that question."""
    from aicache import db, labels
    from aicache.errors import UsageError

    if len(words) not in (1, 2) or words[-1] not in (labels.GOOD, labels.BAD):
        raise UsageError("usage: aicache feedback [EPISODE] good|bad")
    if len(words) == 2 and not words[0].isdigit():
        raise UsageError(f"EPISODE must be an episode id (see `aicache log`), not {words[0]!r}")
    conn = db.connect()
    episode_id = int(words[0]) if len(words) == 2 else labels.newest_episode(conn, str(Path.cwd()))
    with db.write_transaction(conn):
        label = labels.label_episode(conn, episode_id, good=words[-1] == labels.GOOD, source="feedback")
    if json_out:
        output.emit_json({"episode": label.episode_id, "entry": label.entry_id, "good": label.good})
        return
    verdict = "right" if label.good else "wrong: it will not be served again for that question"
    output.note(f"episode {label.episode_id}: answer marked {verdict}")


def register(app: typer.Typer) -> None:
    app.command()(feedback)
