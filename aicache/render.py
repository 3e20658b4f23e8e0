"""Reports (``log``, ``stats``, ``why``, ``eval``, ``config show``, ``keys list``, ``proposals``), rendered with rich.

Separate from ``output.py`` so that the hot path never imports rich: only report commands load this module.
Every report prints through three helpers, which never cut a name or figure short or break it inside:

- ``table``: on a terminal, a table when it fits the width (free text wrapped between words), else one block per
  row; in a pipe, a header line and one tab-separated line per row.
- ``key_values``: a titled block of named values; in a pipe, the title, then one ``name<TAB>value`` line each.
- ``line``: a sentence, wrapped between words on a terminal and whole on one line in a pipe.

In a pipe nothing is padded or wrapped to rich's default 80 columns: text is written as it is, with runs of
whitespace made single spaces so that a tab or newline in stored text cannot split a line. Stored text
(questions, answers, errors from servers) reaches rich as ``Text``, never as markup, and on a terminal with its
control characters made visible (``output.visible_controls``). rich honours ``NO_COLOR``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from aicache.explain import exact_only, refusals, verdict_reasons
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


# A cell of ``table``: text, or a tuple of pieces that a terminal line may break between but never inside
# (``eval``'s "8/26 = 30.8%", "[16.5%, 50.0%]", "≤10.9%").
Cell = str | tuple[str, ...]


def _visible(text: str) -> str:
    return visible_controls(text) if console.is_terminal else text


def _write(lines: Sequence[str]) -> None:
    sys.stdout.write("".join(f"{text}\n" for text in lines))
    sys.stdout.flush()


def line(text: str | Text) -> None:
    """A sentence: wrapped between words on a terminal; whole on one line in a pipe. Never read as markup."""
    if console.is_terminal:
        console.print(text if isinstance(text, Text) else Text(text))
    else:
        _write([_flat(text.plain if isinstance(text, Text) else text)])


def _pieces(cell: Cell, wrap: bool) -> list[str]:
    """What a terminal line may break between: a tuple's pieces, the words of free text, else the whole cell."""
    if isinstance(cell, tuple):
        return [_flat(_visible(piece)) for piece in cell]
    text = _flat(_visible(cell))
    return text.split(" ") if wrap and text else [text]


def _pack(pieces: Sequence[str], width: int) -> str:
    """The pieces on as few lines of at most ``width`` cells as they fit, in order, one space apart."""
    lines: list[str] = []
    for piece in pieces:
        if lines and cell_len(lines[-1]) + 1 + cell_len(piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return "\n".join(lines)


def _column_widths(natural: list[int], least: list[int], room: int) -> list[int] | None:
    """Widths within ``room``, each at least its longest piece, the spare cells given one at a time to the column
    lacking the most of its natural width; None when even the longest pieces do not fit side by side."""
    if sum(least) > room:
        return None
    widths = list(least)
    for _ in range(room - sum(widths)):
        lacking = max(range(len(widths)), key=lambda i: natural[i] - widths[i])
        if widths[lacking] >= natural[lacking]:
            break
        widths[lacking] += 1
    return widths


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    wrap: Collection[str] = (),
    right: Collection[str] = (),
    named_by: int = 1,
    empty: str | None = None,
) -> None:
    """Rows under named columns, with no name or figure ever cut short or broken inside.

    In a pipe: a header line, then one tab-separated line per row, every cell whole. On a terminal: ``title`` on a
    line of its own, then a table when it fits the width, the ``wrap`` columns (free text) broken between words
    and tuple cells between their pieces; on a terminal too narrow even for that, one block per row, titled by
    its first ``named_by`` cells (``key_values``). With no rows, ``empty`` is said on stderr. ``title`` is for
    people (the file a list comes from): in a pipe the header line names the columns.
    """
    if not rows:
        if empty:
            note(empty)
        return
    if not console.is_terminal:
        flat = [[_flat(" ".join(cell) if isinstance(cell, tuple) else cell) for cell in row] for row in rows]
        _write(["\t".join(cells) for cells in (list(columns), *flat)])
        return
    if title:
        line(Text(_visible(title), style="bold"))
    cells = [[_pieces(cell, name in wrap) for name, cell in zip(columns, row, strict=True)] for row in rows]
    heads = [name.split(" ") for name in columns]  # a header may wrap between its words
    natural = [
        max(cell_len(" ".join(pieces)) for pieces in (heads[i], *(row[i] for row in cells)))
        for i in range(len(columns))
    ]
    least = [
        max(cell_len(piece) for pieces in (heads[i], *(row[i] for row in cells)) for piece in pieces)
        for i in range(len(columns))
    ]
    widths = _column_widths(natural, least, console.width - 2 * len(columns))  # padding: a space either side
    if widths is None:
        for row in cells:
            whole = [" ".join(pieces) for pieces in row]
            key_values(" / ".join(whole[:named_by]), dict(zip(columns[named_by:], whole[named_by:], strict=True)))
        return
    shown = Table(box=None, header_style="bold", padding=(0, 1))
    for name, width in zip(columns, widths, strict=True):
        shown.add_column(
            _pack(name.split(" "), width), width=width, no_wrap=True, justify="right" if name in right else "left"
        )
    for row in cells:
        shown.add_row(*(Text(_pack(pieces, width)) for pieces, width in zip(row, widths, strict=True)))
    console.print(shown)


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


def _kept(record: dict[str, Any] | None) -> str:
    """The commit hook's record of a suggestion: how much of it the commit kept."""
    if not record:
        return ""
    kept = record.get("kept_similarity")
    share = f"{kept:.0%}" if isinstance(kept, int | float) else "?"
    return f"kept {share} of the suggestion in commit {record.get('commit') or '?'}"


def episode_detail(episode: dict[str, Any], entry: Any, marked_wrong: list[dict[str, Any]] | None = None) -> None:
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
        "semantic tier": exact_only(e) or "",
        "time": timing,
        "tokens": tokens,
        "cost": cost_text,
        "template": e.get("template") or "",
        "directory": e.get("cwd") or "",
        "feedback": e.get("feedback") or "",
        "commit hook": _kept(e.get("hook_feedback")),
        "error": e.get("error") or "",
    }
    for marked in marked_wrong or []:
        fields[f"refused entry {marked['entry_id']}"] = (
            f"episode {marked['episode_id']} marked its answer wrong ({marked['source']})"
        )
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
    "cache-only misses",
    "refreshes",
    "no-cache",
    "errors",
    "hit rate",
    "tokens saved",
    "time saved",
    "cost saved",
    "judged",
)


def _cost_saved(cost: float | None, unknown_hits: int) -> str:
    if cost is None:
        return "unknown"
    return f"${cost:.4f}" + (
        f" (+{unknown_hits} hit{'' if unknown_hits == 1 else 's'} unknown)" if unknown_hits else ""
    )


def stats_table(rows: list[Any], empty: str = "no episodes yet") -> None:
    """A table on a terminal wide enough for it, else a block per model; in a pipe a header line, then one
    tab-separated line per provider and model. ``empty`` is said when there are none."""
    cells = [
        (
            r.provider or "",
            r.model or "",
            str(r.total),
            str(r.exact_hits),
            str(r.semantic_hits),
            str(r.misses),
            str(r.cache_misses),
            str(r.refreshes),
            str(r.bypasses),
            str(r.errors),
            f"{r.hit_rate:.0%}",
            f"{r.tokens_saved:,}",
            f"{r.seconds_saved:.1f} s",
            _cost_saved(r.cost_saved, r.cost_unknown_hits),
            f"{r.judged} ({r.judge_yes} yes)" if r.judged else "0",
        )
        for r in rows
    ]
    table(STATS_COLUMNS, cells, right=STATS_COLUMNS[2:], named_by=2, empty=empty)


def key_values(title: str | None, values: dict[str, Any]) -> None:
    """Named values: on a terminal the title on a line of its own, then a name and its value (wrapped between
    words) a line; in a pipe the title, then one ``name<TAB>value`` line each."""
    if not console.is_terminal:
        pairs = (f"{_flat(name)}\t{_flat(str(value))}" for name, value in values.items())
        _write([*([title] if title else []), *pairs])
        return
    if title:
        line(Text(_visible(title), style="bold"))
    shown = Table(box=None, show_header=False)
    shown.add_column(style="bold", no_wrap=True)
    shown.add_column(overflow="fold")
    for name, value in values.items():
        shown.add_row(_safe(name), _safe(value))
    console.print(shown)


SETTINGS_COLUMNS = ("setting", "value", "default", "source")


def settings_table(title: str, views: list[Any], endpoint: tuple[str, str]) -> None:
    """``config show``: one row per setting (a ``config.SettingView``), then the endpoint in use and what chose it.

    In a pipe a header line, then one tab-separated line each: name, value, default, source. On a terminal the
    default is shown only where another value replaces it, beside the source, to keep the table narrow.
    """
    from aicache.schema import format_value

    def shown(value: Any) -> str:
        return "" if value is None else value if isinstance(value, str) else format_value(value)

    url, chosen_by = endpoint
    if not console.is_terminal:
        rows = [(view.name, shown(view.value), view.default, view.source) for view in views]
        table(SETTINGS_COLUMNS, [*rows, ("endpoint", url, "", chosen_by)])
        return
    terminal_rows = [
        (
            view.name,
            shown(view.value) if view.value is not None else f"({view.default})",
            view.source if view.source == "default" or not view.default else f"{view.source}; default {view.default}",
        )
        for view in views
    ]
    terminal_rows.append(("endpoint", url, chosen_by))
    table(("setting", "value", "from"), terminal_rows, title=title, wrap=("value", "from"))


def explanation(found: Any) -> None:
    """``why``: the summary, question, entry and decision as sentences, the partition, then each candidate."""
    episode = found.episode
    line(Text.assemble((f"episode {episode['id']}", "bold"), ": ", _safe(found.summary)))
    line(Text.assemble("question: ", _safe(episode["question"])))
    if found.entry is not None:
        line(Text.assemble(f"entry {found.entry.id}: ", _safe(found.entry.question)))
    if found.marked_wrong and found.candidates:  # else the summary says it
        line(Text.assemble("negative list: ", _safe(refusals(found.marked_wrong))))
    if episode.get("threshold") is not None:
        line(Text.assemble("decision: ", _safe(found.decision), f", threshold {episode['threshold']:.3f}"))
    if found.partition:
        key_values("partition", {k: v for k, v in found.partition.items() if v not in (None, {}, "")})
    if not found.candidates:
        return
    scored = any(c.get("score") is not None for c in found.candidates)  # a model judged (not rules, cosine)
    columns = ("entry", "similarity", *(["score"] if scored else []), "verdict", "question", "reasons")
    rows = [
        (
            str(c.get("entry_id", "")),
            f"{c.get('similarity', 0):.3f}",
            *([f"{c.get('score') or 0:.3f}"] if scored else []),
            "accepted" if c.get("accepted") else "refused",
            c.get("question") or "",
            verdict_reasons(c),
        )
        for c in found.candidates
    ]
    line(Text("candidates", style="bold"))
    table(columns, rows, wrap=("question", "reasons"))


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


def _rate_cell(rate: Any, *, bound: bool = False) -> Cell:
    """``count/total = rate``, its interval and (``bound``) its upper bound: pieces a line breaks between only."""
    if not rate.total:
        return "-"
    low, high = rate.interval
    cell = (f"{rate.count}/{rate.total} = {rate.rate:.1%}", f"[{low:.1%}, {high:.1%}]")
    return (*cell, f"≤{rate.upper:.1%}") if bound else cell


def _scores_row(label: str, scores: Any) -> tuple[Cell, ...]:
    return (
        label,
        _rate_cell(scores.paraphrases_served),
        _rate_cell(scores.paraphrases_wrong, bound=True),
        _rate_cell(scores.negatives_wrong, bound=True),
        _rate_cell(scores.unrelated_wrong, bound=True),
    )


EVAL_COLUMNS = ("category", "paraphrases served", "paraphrases wrong", "near-misses wrong", "unrelated wrong")
SWEEP_COLUMNS = ("threshold", "paraphrases served", "near-misses wrong", "unrelated wrong")


def eval_report(report: Any) -> None:
    protocol = "pairwise (each probe against its own stored question)" if report.pairwise else "store all, ask all"
    answered = ""
    if report.answer_threshold is not None:
        answered = f"; {report.answer_threshold:.2f} where it reads the cached answer"
    line(
        Text.assemble(
            (_visible(report.source), "bold"),
            f": {report.stored} questions stored, {report.probes} probes, {protocol}; "
            f"decision {report.decision} at {report.threshold:.2f}{answered} (candidates from similarity "
            f"{report.floor:.2f}), "
            f"model {report.model}, {report.method}, {report.seconds:.1f} s",
        )
    )
    rows = [_scores_row("overall", report.overall), *(_scores_row(name, s) for name, s in report.categories)]
    table(EVAL_COLUMNS, rows)
    line(
        Text(
            "count/total = rate [95% Wilson interval]; wrong rates also show ≤ their one-sided 95% "
            "Clopper–Pearson upper bound; wrong = another question's answer served",
            style="dim",
        )
    )
    if report.judge is not None:
        line(Text(_judge_line(report.judge, report.overall), style="dim"))
    if not report.sweep:
        return
    line(Text("operating point sweep", style="bold"))
    sweep = [
        (
            f"{point.threshold:.2f}",
            _rate_cell(point.scores.paraphrases_served),
            _rate_cell(point.scores.negatives_wrong, bound=True),
            _rate_cell(point.scores.unrelated_wrong, bound=True),
        )
        for point in report.sweep
    ]
    table(SWEEP_COLUMNS, sweep)


def _judge_line(judge: Any, overall: Any) -> str:
    """What the LLM judge did in an eval, or would have been asked (the gray zone: refusals close below the
    operating point with no rule against them)."""
    zone = "the rules' gray zone" if judge.gray_zone is None else f"gray zone {judge.gray_zone:.2f} below the threshold"
    asked = (
        f"{overall.paraphrases_judged.count}/{overall.paraphrases_judged.total} paraphrases about their own "
        f"question's answer, {overall.negatives_judged.count}/{overall.negatives_judged.total} near-misses"
    )
    if judge.model is not None:
        unanswered = f"; {judge.unanswered} replies neither YES nor NO (failed or hedged), taken as NO"
        return (
            f"LLM judge {judge.model} ({zone}, {judge.max_candidates} per lookup; counted above): asked about {asked}"
            + (unanswered if judge.unanswered else "")
        )
    return (
        f"LLM judge off ({zone}, {judge.max_candidates} per lookup): it would be asked about {asked}; one that is "
        "always right would serve those paraphrases too, and each near-miss it accepted would be a wrong answer"
    )


def proposals_table(found: list[Any]) -> None:
    rows = [
        (
            str(p.id),
            _when(p.created),
            p.status,
            p.branch,
            "aicache's own" if p.repo_kind == "default" else p.repo,
            p.why or "",
        )
        for p in found
    ]
    columns = ("id", "created", "status", "branch", "repository", "why")
    table(columns, rows, wrap=("repository", "why"), empty="no proposals yet")


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
    # The message and diff are printed as they are: in a pipe byte for byte (a diff must still apply), on a
    # terminal with rich markup in them not interpreted.
    for text in (detail.message, detail.diff):
        if not text:
            continue
        if console.is_terminal:
            console.print(text, markup=False, highlight=False)
        else:
            _write([text.removesuffix("\n")])
