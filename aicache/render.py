"""Tables for reports (``log``, ``stats``, ``config show``, ``keys list``), rendered with rich.

Separate from ``output.py`` so that the hot path never imports rich: only report commands load this module.
rich writes plain text when stdout is not a terminal and honours ``NO_COLOR``. Stored text (questions, answers,
errors from servers) goes into cells as ``Text``, never as markup, and on a terminal with its control characters
made visible (``output.visible_controls``). In a pipe, ``log`` is one unwrapped line per episode.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from aicache.explain import verdict_reasons
from aicache.output import note, visible_controls

console = Console()


def _safe(text: object) -> Text:
    """Stored text as a cell: never read as markup; on a terminal, no control sequence reaches it raw."""
    value = "" if text is None else str(text)
    return Text(visible_controls(value) if console.is_terminal else value)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def _short(text: str | None, width: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _flat(text: str | None) -> str:
    return " ".join((text or "").split())


def _outcome(e: dict[str, Any]) -> str:
    return e["outcome"] + (f" (similarity {e['similarity']:.2f})" if e.get("similarity") is not None else "")


def episodes_table(episodes: list[dict[str, Any]], empty: str = "no episodes yet") -> None:
    """A table on a terminal; in a pipe one tab-separated line per episode, whole (id, when, outcome, model,
    ms, question, answer or error, each with its whitespace runs made single spaces)."""
    if not episodes:
        note(empty)
        return
    if not console.is_terminal:
        for e in episodes:
            ms = f"{e['latency_ms']:.0f}" if e.get("latency_ms") is not None else ""
            fields = (str(e["id"]), _when(e["ts"]), _outcome(e), e.get("model") or "", ms)
            text = (_flat(e["question"]), _flat(e.get("error") or e.get("answer")))
            sys.stdout.write("\t".join((*fields, *text)) + "\n")
        sys.stdout.flush()
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "when", "outcome", "model", "ms", "question", "answer / error"):
        table.add_column(column, overflow="fold")
    for e in episodes:
        table.add_row(
            str(e["id"]),
            _when(e["ts"]),
            _outcome(e),
            _safe(e.get("model")),
            f"{e['latency_ms']:.0f}" if e.get("latency_ms") is not None else "",
            _safe(_short(e["question"], 50)),
            _safe(_short(e.get("error") or e.get("answer"), 50)),
        )
    console.print(table)


def episode_detail(episode: dict[str, Any], entry: Any) -> None:
    """``show``: one episode in full. The answer is Markdown on a terminal, the exact stored text in a pipe."""
    e = episode
    tokens = "" if e.get("tokens_in") is None else f"{e['tokens_in']} in, {e.get('tokens_out')} out"
    cost = e.get("cost")
    if e["outcome"] in ("exact_hit", "semantic_hit") and entry is not None:
        tokens = tokens or f"{entry.tokens_in} in, {entry.tokens_out} out (the entry's)"
        cost_text = f"$0 (served from the cache; the entry cost ${entry.cost:.6f})" if entry.cost else "$0"
    else:
        cost_text = f"${cost:.6f}" if cost is not None else "unknown (no price for this model)"
    timing = f"{e['latency_ms']:.0f} ms" if e.get("latency_ms") is not None else ""
    if e.get("ttfb_ms") is not None:
        timing += f", first text after {e['ttfb_ms']:.0f} ms"
    fields: dict[str, object] = {
        "episode": e["id"],
        "when": _when(e["ts"]),
        "outcome": _outcome(e),
        "provider / model": f"{e.get('provider') or ''} / {e.get('model') or ''}",
        "entry": e.get("entry_id") or "",
        "threshold": f"{e['threshold']:.3f}" if e.get("threshold") is not None else "",
        "time": timing,
        "tokens": tokens,
        "cost": cost_text,
        "template": e.get("template") or "",
        "directory": e.get("cwd") or "",
        "feedback": e.get("feedback") or "",
        "error": e.get("error") or "",
    }
    for verdict in sorted(e.get("verdicts") or [], key=lambda v: -(v.get("similarity") or 0)):
        decided = "accepted" if verdict.get("accepted") else "refused"
        reasons = verdict_reasons(verdict)
        fields[f"verdict on entry {verdict.get('entry_id', '')}"] = (
            f"{decided}, similarity {verdict.get('similarity', 0):.3f}" + (f": {reasons}" if reasons else "")
        )
    shown = {name: value for name, value in fields.items() if value not in ("", None)}
    if not console.is_terminal:
        out = sys.stdout
        for name, value in shown.items():
            out.write(f"{name}: {value}\n")
        out.write(f"\nquestion:\n{e['question']}\n\nanswer:\n{e.get('answer') or ''}\n")
        out.flush()
        return
    key_values(f"episode {e['id']}", shown)
    console.print()
    console.print(Text("question", style="bold"))
    console.print(_safe(e["question"]))
    console.print()
    console.print(Text("answer", style="bold"))
    console.print(Markdown(visible_controls(e.get("answer") or ""), hyperlinks=False))


STATS_COLUMNS = (
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
)


def stats_table(rows: list[Any], empty: str = "no episodes yet") -> None:
    """A table on a terminal wide enough for it, else a block per model (never a name or figure cut short); in a
    pipe a header line, then one tab-separated line per provider and model. ``empty`` is said when there are none."""
    if not rows:
        note(empty)
        return
    cells = [
        (
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
        for r in rows
    ]
    if not console.is_terminal:
        sys.stdout.write("".join("\t".join(line) + "\n" for line in (STATS_COLUMNS, *cells)))
        sys.stdout.flush()
        return
    table = Table(box=None, header_style="bold")
    for column in STATS_COLUMNS:
        table.add_column(column, justify="left" if column in ("provider", "model") else "right", no_wrap=True)
    for row in cells:
        table.add_row(*(_safe(cell) for cell in row))
    if console.measure(table, options=console.options.update_width(10_000)).maximum <= console.width:
        console.print(table)
        return
    for provider, model, *figures in cells:  # too narrow for the table: one block per model, nothing cut
        key_values(f"{provider} / {model}", dict(zip(STATS_COLUMNS[2:], figures, strict=True)))


def key_values(title: str, values: dict[str, Any]) -> None:
    table = Table(title=title, box=None, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in values.items():
        table.add_row(name, _safe(value))
    console.print(table)


def settings_table(title: str, views: list[Any]) -> None:
    """``config show``: one row per setting (a ``config.SettingView``); in a pipe, one tab-separated line each
    (name, value, default, source), never wrapped, for grep and cut."""
    from aicache.schema import format_value

    def shown(value: Any) -> str:
        return "" if value is None else value if isinstance(value, str) else format_value(value)

    if not console.is_terminal:
        for view in views:
            print(f"{view.name}\t{shown(view.value)}\t{view.default}\t{view.source}")
        return
    table = Table(title=title, box=None, header_style="bold", title_justify="left")
    table.add_column("setting", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("from", overflow="fold", style="dim")
    for view in views:
        # The default is shown only where another value replaces it, to keep the table narrow.
        source = (
            view.source if view.source == "default" or not view.default else f"{view.source}; default {view.default}"
        )
        table.add_row(view.name, shown(view.value) if view.value is not None else f"({view.default})", source)
    console.print(table)


def explanation(found: Any) -> None:
    episode = found.episode
    console.print(Text.assemble((f"episode {episode['id']}", "bold"), ": ", _safe(found.summary)))
    console.print(Text.assemble("question: ", _safe(episode["question"])))
    if found.entry is not None:
        console.print(Text.assemble(f"entry {found.entry.id}: ", _safe(_short(found.entry.question, 100))))
    if episode.get("threshold") is not None:
        console.print(f"decision: {found.decision}, threshold {episode['threshold']:.3f}")
    if found.partition:
        key_values("partition", {k: v for k, v in found.partition.items() if v not in (None, {}, "")})
    if not found.candidates:
        return
    scored = any(c.get("score") is not None for c in found.candidates)  # a model judged (not rules, cosine)
    table = Table(title="candidates", box=None, header_style="bold", title_justify="left")
    for column in ("entry", "similarity", *(["score"] if scored else []), "verdict", "question", "reasons"):
        table.add_column(column, overflow="fold")
    for c in found.candidates:
        table.add_row(
            str(c.get("entry_id", "")),
            f"{c.get('similarity', 0):.3f}",
            *([f"{c.get('score') or 0:.3f}"] if scored else []),
            "accepted" if c.get("accepted") else "refused",
            _safe(_short(c.get("question"), 50)),
            _safe(verdict_reasons(c)),
        )
    console.print(table)


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr for long batches; the yielded ``advance(done, total)`` moves it. Only on a
    terminal: elsewhere there is nothing to redraw, and rich would still end the bar with an empty line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    stderr = Console(stderr=True)
    if not stderr.is_terminal:
        yield lambda done, total: None
        return
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
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
