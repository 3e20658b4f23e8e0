"""``aicache why``, ``aicache eval`` and ``aicache reindex``: inspect and measure the semantic tier."""

from __future__ import annotations

from pathlib import Path

import typer

from aicache import output


def why(
    episode_id: int = typer.Argument(..., help="Episode id, as shown by `aicache log`."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Why an episode was a hit or a miss: matched entry, similarity, threshold, partition, verdicts."""
    from aicache import db
    from aicache.explain import explain

    with db.reading() as conn:
        found = explain(conn, episode_id)
    if json_out:
        from dataclasses import asdict

        entry = asdict(found.entry) if found.entry else None
        output.emit_json(
            {
                "summary": found.summary,
                "episode": found.episode,
                "entry": entry,
                "partition": found.partition,
                "candidates": found.candidates,
                "marked_wrong": found.marked_wrong,
            }
        )
        return
    from aicache import render

    render.explanation(found)


def _operating_point(value: float | None) -> float | None:
    # The range `config set` allows for cache.threshold and decision.threshold; NaN is refused too.
    if value is not None and not 0 <= value <= 1:
        raise typer.BadParameter(f"{value:g} is not a number from 0 to 1")
    return value


def eval_command(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Labelled questions: JSONL, or pairs in a CSV or TSV file with a header."
    ),
    decision: str = typer.Option(
        None, "--decision", help="model, rules or cosine (default: the setting decision.kind)."
    ),
    threshold: float = typer.Option(
        None, "--threshold", callback=_operating_point, help="Operating point of the decision to evaluate, 0 to 1."
    ),
    sweep: bool = typer.Option(False, "--sweep", help="Also print the curve over operating points."),
    pairwise: bool = typer.Option(
        False, "--pairwise", help="Compare each probe with its own stored question only (store a, ask b)."
    ),
    sample: int = typer.Option(
        None, "--sample", min=1, help="Evaluate this many rows of the file, drawn with a fixed seed (large suites)."
    ),
    judge: bool = typer.Option(
        False, "--judge", help="Let the configured LLM judge rule on the gray zone (one call per question put to it)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """How safe is this cache on labelled pairs? Runs them through a fresh temporary cache."""
    from aicache import config, render
    from aicache.errors import UsageError
    from aicache.semantic import evaluate

    if decision is not None and decision not in ("model", "rules", "cosine"):
        raise UsageError(f"--decision must be model, rules or cosine, not {decision!r}")
    evalset = evaluate.load_pairs(file, sample)
    with render.progress("evaluating") as advance:
        report = evaluate.run_eval(
            evalset,
            settings=config.load(),
            decision=decision,
            threshold=threshold,
            sweep=sweep,
            pairwise=pairwise,
            judge=judge,
            progress=advance,
        )
    if json_out:
        output.emit_json(report.to_json())
        return
    render.eval_report(report)


def reindex() -> None:
    """Rebuild the vector index from the store (re-embedding entries made with another model)."""
    from aicache import config, db, render
    from aicache.semantic import tier

    conn = db.connect()
    with render.progress("reindexing") as advance:
        count = tier.reindex(conn, config.load(), advance)
    output.note(f"indexed {count} entries")


def register(app: typer.Typer) -> None:
    app.command()(why)
    app.command("eval")(eval_command)
    app.command()(reindex)
