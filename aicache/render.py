"""Tables for reports (``log``, ``stats``, ``config show``, ``keys list``), rendered with rich.

Separate from ``output.py`` so that the hot path never imports rich: only report commands load this module.
rich writes plain text when stdout is not a terminal and honours ``NO_COLOR``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def _short(text: str | None, width: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def episodes_table(episodes: list[dict[str, Any]]) -> None:
    if not episodes:
        console.print("no episodes yet", style="dim")
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "when", "outcome", "model", "ms", "question", "answer / error"):
        table.add_column(column, overflow="fold")
    for e in episodes:
        table.add_row(
            str(e["id"]),
            _when(e["ts"]),
            e["outcome"] + (f" (sim {e['similarity']:.2f})" if e.get("similarity") else ""),
            e.get("model") or "",
            f"{e['latency_ms']:.0f}" if e.get("latency_ms") is not None else "",
            _short(e["question"], 50),
            _short(e.get("error") or e.get("answer"), 50),
        )
    console.print(table)


def stats_table(rows: list[Any]) -> None:
    if not rows:
        console.print("no episodes yet", style="dim")
        return
    table = Table(box=None, header_style="bold")
    for column in (
        "provider",
        "model",
        "asks",
        "exact",
        "semantic",
        "misses",
        "errors",
        "hit rate",
        "tokens saved",
        "time saved",
        "cost saved",
    ):
        table.add_column(column, justify="right" if column not in ("provider", "model") else "left")
    for r in rows:
        table.add_row(
            r.provider or "",
            r.model or "",
            str(r.total),
            str(r.exact_hits),
            str(r.semantic_hits),
            str(r.misses),
            str(r.errors),
            f"{r.hit_rate:.0%}",
            f"{r.tokens_saved:,}",
            f"{r.seconds_saved:.1f} s",
            f"${r.cost_saved:.4f}",
        )
    console.print(table)


def key_values(title: str, values: dict[str, Any]) -> None:
    table = Table(title=title, box=None, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in values.items():
        table.add_row(name, str(value))
    console.print(table)


def explanation(found: Any) -> None:
    episode = found.episode
    console.print(f"[bold]episode {episode['id']}[/bold]: {found.summary}")
    console.print(f"question: {episode['question']}")
    if found.entry is not None:
        console.print(f"entry {found.entry.id}: {_short(found.entry.question, 100)}")
    if episode.get("threshold") is not None:
        console.print(f"threshold: {episode['threshold']:.3f}")
    if found.partition:
        key_values("partition", {k: v for k, v in found.partition.items() if v not in (None, {}, "")})
    if not found.candidates:
        return
    table = Table(title="candidates", box=None, header_style="bold", title_justify="left")
    for column in ("entry", "similarity", "verdict", "question", "reasons"):
        table.add_column(column, overflow="fold")
    for c in found.candidates:
        table.add_row(
            str(c.get("entry_id", "")),
            f"{c.get('similarity', 0):.3f}",
            "accepted" if c.get("accepted") else "refused",
            _short(c.get("question"), 50),
            "; ".join(c.get("reasons", [])),
        )
    console.print(table)


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr for long batches; the yielded ``advance(done, total)`` moves it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def advance(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield advance


def _rate_cell(rate: Any, *, bound: bool = False) -> str:
    if not rate.total:
        return "-"
    low, high = rate.interval
    cell = f"{rate.count}/{rate.total} = {rate.rate:.1%} [{low:.1%}, {high:.1%}]"
    return f"{cell} ≤{rate.upper:.1%}" if bound else cell


def _scores_rows(table: Table, label: str, scores: Any) -> None:
    table.add_row(
        label,
        _rate_cell(scores.paraphrases_served),
        _rate_cell(scores.paraphrases_wrong, bound=True),
        _rate_cell(scores.negatives_wrong, bound=True),
        _rate_cell(scores.unrelated_wrong, bound=True),
    )


def eval_report(report: Any) -> None:
    protocol = "pairwise (each probe against its own stored question)" if report.pairwise else "store all, ask all"
    console.print(
        f"[bold]{report.source}[/bold]: {report.stored} questions stored, {report.probes} probes, {protocol}; "
        f"decision {report.decision} at {report.threshold:.2f} (candidates from similarity {report.floor:.2f}), "
        f"model {report.model}, {report.method}, {report.seconds:.1f} s"
    )
    table = Table(box=None, header_style="bold")
    for column in ("", "paraphrases served", "paraphrases wrong", "near-misses wrong", "unrelated wrong"):
        table.add_column(column)
    _scores_rows(table, "overall", report.overall)
    for category, scores in report.categories:
        _scores_rows(table, category, scores)
    console.print(table)
    console.print(
        "[dim]count/total = rate [95% Wilson interval]; wrong rates also show ≤ their one-sided 95% "
        "Clopper–Pearson upper bound; wrong = another question's answer served[/dim]"
    )
    if not report.sweep:
        return
    sweep = Table(title="operating point sweep", box=None, header_style="bold", title_justify="left")
    for column in ("threshold", "paraphrases served", "near-misses wrong", "unrelated wrong"):
        sweep.add_column(column)
    for point in report.sweep:
        s = point.scores
        sweep.add_row(
            f"{point.threshold:.2f}",
            _rate_cell(s.paraphrases_served),
            _rate_cell(s.negatives_wrong, bound=True),
            _rate_cell(s.unrelated_wrong, bound=True),
        )
    console.print(sweep)


def proposals_table(found: list[Any]) -> None:
    if not found:
        console.print("no proposals yet", style="dim")
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "created", "status", "branch", "repository", "why"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "created", "status"))
    for p in found:
        where = "aicache's own" if p.repo_kind == "default" else p.repo
        table.add_row(str(p.id), _when(p.created), p.status, p.branch, where, _short(p.why, 40))
    console.print(table)


def proposal_detail(detail: Any) -> None:
    p = detail.proposal
    gone = "" if detail.branch_exists else " (branch gone)"
    key_values(
        f"proposal {p.id}",
        {
            "status": p.status + (f": {p.why}" if p.why else ""),
            "branch": p.branch + gone,
            "commit": p.commit,
            "repository": f"{p.repo} ({p.repo_kind})",
            "created": _when(p.created),
            **({"applied as": p.applied_commit} if p.applied_commit else {}),
            **({"reverted by": p.reverted_commit} if p.reverted_commit else {}),
        },
    )
    # The message and diff are printed as they are: rich markup in them must not be interpreted.
    if detail.message:
        console.print(detail.message, markup=False, highlight=False)
    if detail.diff:
        console.print(detail.diff, markup=False, highlight=False)
