"""``aicache learn``: what the episodes say about the hit decision and the index, proposed as a git branch."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from aicache import output

if TYPE_CHECKING:
    from aicache.learn.refit import Refit
    from aicache.learn.run import Study
    from aicache.learn.settings_repo import SettingsRepo


def learn(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the findings, evidence and diff; write nothing."),
    pairs: list[Path] = typer.Option(
        None, "--pairs", exists=True, dir_okay=False, help="Labelled pairs (JSONL, as for eval) to learn from too."
    ),
    max_wrong: float = typer.Option(
        None, "--max-wrong", min=0.0001, max=0.5, help="Budget on wrong answers (default: learn.max_wrong, 0.01)."
    ),
    repo: bool = typer.Option(False, "--repo", help="Propose in .aicache/ of the current git repository."),
    report: Path = typer.Option(None, "--report", dir_okay=False, help="Also write the evidence as an HTML page."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Learn from labelled episodes; propose changed settings as a git branch for you to review."""
    from aicache import config, db, render
    from aicache.learn import proposals, run, settings_repo

    target = settings_repo.project_repo(Path.cwd()) if repo else settings_repo.default_repo()
    proposals.check_base(target)  # before the minute of work, not after it
    settings = config.load()
    budget = float(max_wrong if max_wrong is not None else settings.get("learn.max_wrong", 0.01))
    command = shlex.join(["aicache", "learn", *sys.argv[2:]]) if sys.argv[1:2] == ["learn"] else "aicache learn"
    conn = db.connect()
    with render.progress("learning") as advance:
        found = run.study(
            conn,
            settings,
            pair_files=pairs or [],
            max_wrong=budget,
            command=command,
            progress=lambda _step, done, total: advance(done, total),
        )
    proposal = _propose(conn, found, target, dry_run=dry_run)
    if report is not None:
        from aicache.learn import report as learn_report

        learn_report.write(report, learn_report.render(found.to_json() | {"proposal": proposal}, run.history(conn)))
        output.note(f"report written to {report}")
    if json_out:
        output.emit_json({"learn": found.to_json(), "proposal": proposal, "dry_run": dry_run})
        return
    _show(found, proposal, dry_run)


def _propose(conn: Any, found: Study, target: SettingsRepo, *, dry_run: bool) -> dict[str, Any] | None:
    """The proposal's files and diff (a dry run stops there, writing nothing), or the branch made for it."""
    from aicache.learn import proposals, run, settings_repo

    if not found.changes:
        if not dry_run:
            _record_run(conn, found, proposal=None)
        return None
    current = settings_repo.read_learned(target.settings_dir / settings_repo.LEARNED_FILE)
    files = {settings_repo.LEARNED_FILE: run.learned_toml(current, found.changes)} | found.artefacts
    shown: dict[str, Any] = {"slug": found.slug, "files": sorted(files), "diff": proposals.preview(target, files)}
    if dry_run:
        return shown
    run_id = proposals.start_run(conn, found.command, found.episode_ids)
    made = proposals.propose(
        target,
        found.slug,
        files,
        f"learn: {found.slug}",
        run.evidence(found),
        found.episode_ids,
        run_id=run_id,
        conn=conn,
    )
    proposals.finish_run(conn, run_id, {"changes": found.changes, "proposal": made.id})
    return shown | {"id": made.id, "branch": made.branch}


def _record_run(conn: Any, found: Study, proposal: int | None) -> None:
    from aicache.learn import proposals

    run_id = proposals.start_run(conn, found.command, found.episode_ids)
    proposals.finish_run(conn, run_id, {"changes": found.changes, "proposal": proposal})


def _show(found: Study, proposal: dict[str, Any] | None, dry_run: bool) -> None:
    counts = found.counts
    print(
        f"{counts['labels']} labelled pairs ({counts['right']} right, {counts['wrong']} wrong) from "
        f"{counts['episodes']} episodes; decision {found.decision}; budget {found.max_wrong:.1%} wrong answers "
        "(95% upper bound)"
    )
    for c in found.calibrations:
        before = c.test_before
        line = f"  {c.group}: threshold {c.current:.3f}"
        if c.fitted is not None and c.test_after is not None:
            after = c.test_after
            line += (
                f" -> {c.fitted:.3f}; newer data: served {before.served}/{before.right} -> "
                f"{after.served}/{after.right}, wrong {before.wrong}/{before.wrong_pairs} "
                f"(<= {before.wrong_bound:.1%}) -> "
                f"{after.wrong}/{after.wrong_pairs} (<= {after.wrong_bound:.1%})"
            )
        print(line)
        print(f"    {'accepted' if c.accepted else 'kept'}: {c.why}")
    if found.refit is not None:
        _show_refit(found.refit)
    for row in found.search.get("hnsw", []):
        print(f"  hnsw M={row['M']} ef={row['ef']}: recall@1 {row['recall_at_1']:.3f}, {row['p50_ms']:.3f} ms")
    for row in found.search.get("candidates", []):
        print(f"  candidates {row['k']}: the right entry among them for {row['recall']:.1%} of right pairs")
    if proposal is None:
        print("nothing to propose: today's settings stand")
        return
    print(proposal["diff"], end="" if proposal["diff"].endswith("\n") else "\n")
    if dry_run:
        print(f"dry run: would propose branch aicache/learn/<date>-{proposal['slug']}; nothing was written")
    else:
        print(f"proposed {proposal['branch']} (proposal {proposal['id']}): aicache proposals show {proposal['id']}")


def _show_refit(found: Refit) -> None:
    before, after = found.baseline, found.after
    line = f"  refit of {found.base} on {found.user_rows} of your pairs + {found.shipped_rows} shipped rows"
    if after is not None:
        line += (
            f" -> {found.version} at {found.threshold:.3f}; newer data: served {before.served}/{before.right} -> "
            f"{after.served}/{after.right}, wrong {before.wrong}/{before.wrong_pairs} (<= {before.wrong_bound:.1%})"
            f" -> {after.wrong}/{after.wrong_pairs} (<= {after.wrong_bound:.1%})"
        )
    print(line)
    if found.shipped_after is not None:
        shipped = found.shipped_after
        print(
            f"    shipped calibration topics: served {shipped.served}/{shipped.right}, "
            f"wrong {shipped.wrong}/{shipped.wrong_pairs} (<= {shipped.wrong_bound:.1%})"
        )
    print(f"    {'accepted' if found.accepted else 'kept'}: {found.why}")


def register(app: typer.Typer) -> None:
    app.command()(learn)
