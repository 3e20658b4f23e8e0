"""The evidence of ``aicache learn`` as one self-contained HTML page (``aicache learn --report FILE``).

The page is built only from the aggregates ``learn`` computed (counts, rates, bounds, settings, the proposal's
diff of settings files), never from episodes, so no question or answer can reach it. It must open anywhere, offline,
as an attachment or a CI artefact: the plots are PNG images inside ``data:`` URLs, the style sheet is inline, and
nothing in it points at the network. Every value from the input is HTML-escaped, the diff included.

matplotlib is imported only inside ``render`` and draws on Agg canvases (no display, no pyplot). It keeps a font
cache in ``MPLCONFIGDIR``, by default under the user's home; when that is not set, the cache goes to a temporary
directory that is removed once matplotlib is loaded, so a report leaves nothing behind in the home directory.

Thin data is normal (most users start with few labels), so every section that lacks data says so in a sentence
instead of drawing an empty plot.
"""

from __future__ import annotations

import base64
import datetime as dt
import errno
import html
import io
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aicache import files
from aicache.errors import AicacheError, UsageError

SCHEMA = "aicache.learn/1"
ROLLING_DAYS = 7

# Colours that stay apart for the common kinds of colour blindness (Okabe–Ito).
BLUE, ORANGE, GREEN, VERMILION, GREY, PURPLE = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#666666", "#CC79A7"

Out = Mapping[str, Any]


def render(result: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> str:
    """The whole page for one ``learn`` result and the per-day ask history, as HTML text."""
    schema = result.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise UsageError(f"cannot draw a report for learn result schema {schema!r}; this aicache draws {SCHEMA!r}")
    figure = _figure_factory()
    sections = [
        _header(result),
        _operating_point(result, figure),
        _calibrations(result.get("calibrations") or []),
        _refit(result.get("refit")),
        _history(history, figure),
    ]
    if result.get("search"):
        sections.append(_search(result["search"], figure))
    sections.append(_proposal(result.get("proposal")))
    sections.append(_proposals(result.get("proposals") or []))
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>aicache learn report</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def write(path: Path, text: str) -> None:
    """Write the page to ``path`` atomically: a temporary file in the same directory, then a rename.

    A reader sees the old file or the whole new one, never half a page; on any failure the old file is left as it
    was and the temporary file is removed. Raises ``UsageError`` (one line naming the path) when the path cannot be
    written: a missing or read-only directory, a directory in its place.
    """
    target = Path(path)
    try:
        payload = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AicacheError(f"cannot write the report to {target}: the page is not valid text ({exc.reason})") from None
    try:
        # a report is an ordinary document: the mode any new file would get, not a private one
        files.write_atomic(target, payload, mode=0o666 & ~_umask())
    except OSError as exc:
        raise _write_error(target, exc) from None


def _write_error(target: Path, exc: OSError) -> AicacheError:
    reason = exc.strerror or str(exc)
    message = f"cannot write the report to {target}: {reason}"
    usage = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EROFS}
    return UsageError(message) if exc.errno in usage else AicacheError(message)


def _umask() -> int:
    # The only portable way to read the umask is to set it; the CLI runs one thread, so the swap is not observed.
    current = os.umask(0o022)
    os.umask(current)
    return current


# --- matplotlib -------------------------------------------------------------------------------------------------


FigureFactory = Callable[..., Any]


def _figure_factory() -> FigureFactory:
    """A maker of matplotlib figures on the Agg backend, loaded without a font cache in the home directory."""
    if "matplotlib" in sys.modules or os.environ.get("MPLCONFIGDIR"):
        return _load_matplotlib()
    scratch = tempfile.mkdtemp(prefix="aicache-mpl-")
    os.environ["MPLCONFIGDIR"] = scratch
    try:
        return _load_matplotlib()
    finally:
        # matplotlib reads the variable and builds its font list while it is imported, and writes nothing there later.
        del os.environ["MPLCONFIGDIR"]
        shutil.rmtree(scratch, ignore_errors=True)


def _load_matplotlib() -> FigureFactory:
    # Loading the font manager builds the font list now, while MPLCONFIGDIR still points at the scratch directory.
    import matplotlib.font_manager  # noqa: F401
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def figure(**options: Any) -> Any:
        # Each figure gets its own Agg canvas: no display needed, and no pyplot state or process-wide backend switch
        # that a program using aicache as a library would notice.
        fig = Figure(**options)
        FigureCanvasAgg(fig)
        return fig

    return figure


def _png(fig: Any, alt: str) -> str:
    buffer = io.BytesIO()
    # No "Software" chunk: the page should carry nothing but the picture.
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _percent_axis(ax: Any) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    ax.grid(True, color="#dddddd", linewidth=0.6)


# --- sections ---------------------------------------------------------------------------------------------------


def _header(result: Mapping[str, Any]) -> str:
    window = result.get("window") or {}
    start, end = window.get("from"), window.get("to")
    period = f"{_when(start)} to {_when(end)} (UTC)" if start and end else "no episodes yet"
    counts = result.get("counts") or {}
    by_source = counts.get("by_source") or {}
    sources = ", ".join(f"{_e(name)} {_int(n)}" for name, n in by_source.items()) or "none"
    max_wrong = result.get("max_wrong")
    budget = f"at most {_pct(max_wrong)} wrong answers (95% upper bound)" if max_wrong is not None else "not given"
    proposal = result.get("proposal")
    verdict = f"proposes <code>{_e(proposal.get('slug', ''))}</code>" if proposal else "proposes no change"
    rows = [
        ("Data window", _e(period)),
        ("Episodes", _int(counts.get("episodes", 0))),
        ("Labels", f"{_int(counts.get('labels', 0))} ({sources})"),
        ("Hit decision", f"<code>{_e(result.get('decision', 'unknown'))}</code>"),
        ("Budget", _e(budget)),
        ("Outcome", verdict),
    ]
    table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<header><h1>aicache learn report</h1><table class="facts">{table}</table></header>'


def _operating_point(result: Mapping[str, Any], figure: FigureFactory) -> str:
    title = '<section id="operating-point"><h2>Served and wrong answers against the operating point</h2>'
    curve = result.get("curve") or {}
    points = sorted((p for p in curve.get("points") or [] if p.get("threshold") is not None), key=_threshold)
    labelled = [p for p in points if p.get("right_pairs") or p.get("wrong_pairs")]
    if len(labelled) < 2:
        why = "no labelled pairs in the newer part" if not labelled else "only one operating point was measured"
        return (
            f'{title}<p class="thin">No curve to draw: {why}. Labels come from <code>aicache feedback</code>, '
            "<code>ask --refresh</code>, shadow checks, the LLM judge's rulings and <code>--pairs</code> files."
            "</p></section>"
        )
    max_wrong = result.get("max_wrong")
    current, fitted = curve.get("current"), curve.get("fitted")
    xs = [float(p["threshold"]) for p in labelled]

    fig = figure(figsize=(9.6, 6.4), layout="constrained")
    served_ax, wrong_ax = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1))
    served_ax.plot(xs, [p.get("served_rate", 0.0) for p in labelled], color=BLUE, linewidth=2, label="served")
    served_ax.set_ylabel("right answers served")
    served_ax.set_ylim(0, 1.02)
    _percent_axis(served_ax)

    rates = [p.get("wrong_rate", 0.0) for p in labelled]
    bounds = [max(p.get("wrong_upper95", 0.0), p.get("wrong_rate", 0.0)) for p in labelled]
    wrong_ax.fill_between(xs, rates, bounds, color=VERMILION, alpha=0.18, linewidth=0, label="up to the 95% bound")
    wrong_ax.plot(xs, bounds, color=VERMILION, linestyle="--", linewidth=1.2, label="95% upper bound")
    wrong_ax.plot(xs, rates, color=VERMILION, linewidth=2, label="wrong answers seen")
    top = max(bounds)
    if max_wrong is not None:
        wrong_ax.axhline(max_wrong, color="black", linestyle=":", linewidth=1.4, label=f"budget {_pct(max_wrong)}")
        top = max(top, max_wrong)
    if max_wrong is not None:
        # Where almost nothing is served the bound nears 100%: scale to where the budget line stays readable.
        top = max(4 * max_wrong, min(1.1 * max(rates), 10 * max_wrong))
    wrong_ax.set_ylim(0, min(1.0, max(top, 0.01)) * 1.05)
    wrong_ax.set_ylabel("near-misses served")
    wrong_ax.set_xlabel("operating point (threshold on the hit decision's score)")
    _percent_axis(wrong_ax)

    for ax in (served_ax, wrong_ax):
        if current is not None:
            ax.axvline(current, color=GREY, linewidth=1.5, label=f"current {current:.3f}")
        if fitted is not None:
            ax.axvline(fitted, color=GREEN, linewidth=1.5, linestyle="-.", label=f"fitted {fitted:.3f}")
    served_ax.legend(loc="lower left", fontsize=9)
    wrong_ax.legend(loc="upper right", fontsize=9)
    group = curve.get("group", "all")
    served_ax.set_title(f"group: {group}, on the newer (test) part", fontsize=10)
    image = _png(fig, "served and wrong-answer rates against the operating point")

    right_pairs, wrong_pairs = labelled[0].get("right_pairs", 0), labelled[0].get("wrong_pairs", 0)
    caption = (
        f"On the newer part of the labels, which the fit did not see: {_int(right_pairs)} pairs where the stored "
        f"answer was right, {_int(wrong_pairs)} where it was wrong. <em>Served</em> is the share of the right ones "
        "a threshold serves; <em>wrong</em> the share of the wrong ones it serves, with the one-sided 95% "
        "Clopper–Pearson upper bound above it. Higher thresholds serve less and risk less."
    )
    return f"{title}{image}<p>{caption}</p></section>"


def _calibrations(calibrations: Sequence[Mapping[str, Any]]) -> str:
    title = '<section id="calibrations"><h2>Calibrations</h2>'
    if not calibrations:
        return f'{title}<p class="thin">No calibration was attempted: there are no labels yet.</p></section>'
    head = (
        "<tr><th>group</th><th>current</th><th>fitted</th><th>fit pairs</th>"
        "<th>test, current</th><th>test, fitted</th><th>accepted</th><th>why</th></tr>"
    )
    rows = []
    for c in calibrations:
        fitted = c.get("fitted_threshold")
        accepted = bool(c.get("accepted"))
        rows.append(
            "<tr>"
            f"<td>{_e(c.get('group', ''))}</td>"
            f"<td>{_num(c.get('current_threshold'))}</td>"
            f"<td>{_num(fitted) if fitted is not None else '&mdash;'}</td>"
            f"<td>{_int(c.get('fit_pairs', 0))}</td>"
            f"<td>{_outcome(c.get('test_before'))}</td>"
            f"<td>{_outcome(c.get('test_after'))}</td>"
            f'<td class="{"yes" if accepted else "no"}">{"yes" if accepted else "no"}</td>'
            f"<td>{_e(c.get('why', ''))}</td>"
            "</tr>"
        )
    note = (
        "<p>Each group is fitted on the older labels and tested on the newer ones. A test cell reads: right answers "
        "served, then wrong answers served with their 95% upper bound.</p>"
    )
    return f"{title}<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>{note}</section>"


def _refit(found: Mapping[str, Any] | None) -> str:
    title = '<section id="refit"><h2>Refitted model</h2>'
    if not found:
        return f'{title}<p class="thin">This decision has no weights to refit.</p></section>'
    accepted = bool(found.get("accepted"))
    head = (
        "<tr><th>model</th><th>threshold</th><th>rows: yours + shipped</th><th>newer part, without it</th>"
        "<th>newer part, refitted</th><th>shipped calibration topics, refitted</th><th>accepted</th><th>why</th></tr>"
    )
    version = found.get("version")
    row = (
        "<tr>"
        f"<td><code>{_e(found.get('base', ''))}</code>"
        f"{f' &rarr; <code>{_e(version)}</code>' if version else ''}</td>"
        f"<td>{_num(found.get('threshold'))}</td>"
        f"<td>{_int(found.get('user_rows', 0))} + {_int(found.get('shipped_rows', 0))}</td>"
        f"<td>{_outcome(found.get('newer_before'))}</td>"
        f"<td>{_outcome(found.get('newer_after'))}</td>"
        f"<td>{_outcome(found.get('shipped_calibration_after'))}</td>"
        f'<td class="{"yes" if accepted else "no"}">{"yes" if accepted else "no"}</td>'
        f"<td>{_e(found.get('why', ''))}</td>"
        "</tr>"
    )
    note = (
        "<p>The model's weights fitted again on your older labels mixed with the shipped training rows, its "
        "threshold chosen on scores it did not train on, and kept within the bound on the topics the shipped model "
        "was calibrated on.</p>"
    )
    return f"{title}<table><thead>{head}</thead><tbody>{row}</tbody></table>{note}</section>"


def _history(history: Sequence[Mapping[str, Any]], figure: FigureFactory) -> str:
    title = '<section id="history"><h2>Hits and savings over time</h2>'
    days = sorted((row for row in history if row.get("day")), key=lambda row: str(row["day"]))
    if not any(row.get("asks") for row in days):
        return f'{title}<p class="thin">No asks recorded yet, so there is no history to draw.</p></section>'
    fig = figure(figsize=(9.6, 6.4), layout="constrained")
    rate_ax, saved_ax = fig.subplots(2, 1, sharex=True)
    _plot_hit_rates(rate_ax, [row for row in days if row.get("asks")])
    saved_seconds, saved_cost = _plot_savings(saved_ax, days)
    image = _png(fig, "hit rate per day and cumulative time and cost saved")
    asks = sum(int(r.get("asks") or 0) for r in days)
    hits = sum(int(r.get("exact_hits") or 0) + int(r.get("semantic_hits") or 0) for r in days)
    summary = (
        f"{_int(asks)} asks over {_int(len(days))} days, {_int(hits)} answered from the cache "
        f"({_pct(hits / asks)}); {_duration(saved_seconds)} and {saved_cost:.2f} USD saved in all."
    )
    return f"{title}{image}<p>{_e(summary)}</p></section>"


def _plot_hit_rates(ax: Any, asked: Sequence[Mapping[str, Any]]) -> None:
    """Each day's share of asks answered from the cache, and the trailing week's by kind of hit."""
    dates = [dt.date.fromisoformat(str(row["day"])) for row in asked]

    def rate(rows: Sequence[Mapping[str, Any]], *kinds: str) -> float:
        return sum(int(row.get(kind) or 0) for row in rows for kind in kinds) / sum(int(row["asks"]) for row in rows)

    # A day's rate swings with how few asks a quiet day has; the trailing week's rate shows the trend.
    weeks = [[r for r, d in zip(asked, dates, strict=True) if 0 <= (day - d).days < ROLLING_DAYS] for day in dates]
    ax.plot(
        dates,
        [rate([r], "exact_hits", "semantic_hits") for r in asked],
        color=BLUE,
        alpha=0.35,
        linestyle="none",
        marker="o",
        markersize=3,
        label="all hits, that day",
    )
    for kinds, colour, width, label in (
        (("exact_hits", "semantic_hits"), BLUE, 2.2, "all hits"),
        (("exact_hits",), ORANGE, 1.4, "exact"),
        (("semantic_hits",), PURPLE, 1.4, "semantic"),
    ):
        rolling = [rate(week, *kinds) for week in weeks]
        ax.plot(dates, rolling, color=colour, linewidth=width, label=f"{label}, last {ROLLING_DAYS} days")
    ax.set_ylabel("share of asks answered")
    ax.set_ylim(0, 1.02)
    _percent_axis(ax)
    ax.legend(loc="upper left", fontsize=9)


def _plot_savings(ax: Any, days: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """Time and cost saved, summed up to each day (time on the left axis, in a unit its total reads well in,
    cost on the right); returns the totals."""
    dates = [dt.date.fromisoformat(str(row["day"])) for row in days]
    seconds = list(itertools.accumulate(float(row.get("saved_seconds") or 0.0) for row in days))
    cost = list(itertools.accumulate(float(row.get("saved_cost") or 0.0) for row in days))
    total = seconds[-1]
    unit, scale = ("hours", 3600.0) if total >= 7200 else ("minutes", 60.0) if total >= 120 else ("seconds", 1.0)
    ax.plot(dates, [s / scale for s in seconds], color=GREEN, linewidth=2, label=f"time saved ({unit})")
    ax.set_ylabel(f"time saved, {unit}")
    ax.set_ylim(bottom=0)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    cost_ax = ax.twinx()
    cost_ax.plot(dates, cost, color=GREY, linewidth=1.5, linestyle="--", label="cost saved (USD)")
    cost_ax.set_ylabel("cost saved, USD")
    cost_ax.set_ylim(bottom=0)
    lines = ax.get_lines() + cost_ax.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=9)
    ax.set_title("cumulative", fontsize=10)

    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    if len(dates) == 1:  # one day has no width: give the axis one on each side
        ax.set_xlim(dates[0] - dt.timedelta(days=1), dates[0] + dt.timedelta(days=1))
    return total, cost[-1]


def _search(search: Mapping[str, Any], figure: FigureFactory) -> str:
    parts = ['<section id="search"><h2>Configuration search</h2>']
    hnsw = [r for r in search.get("hnsw") or [] if r.get("recall_at_1") is not None and r.get("p50_ms") is not None]
    if hnsw:
        fig = figure(figsize=(9.6, 4.4), layout="constrained")
        ax = fig.subplots()
        colours = [BLUE, ORANGE, GREEN, VERMILION, PURPLE, GREY]
        for i, m in enumerate(sorted({r["M"] for r in hnsw})):
            rows = sorted((r for r in hnsw if r["M"] == m), key=lambda r: r["ef"])
            xs, ys = [r["p50_ms"] for r in rows], [r["recall_at_1"] for r in rows]
            ax.plot(xs, ys, color=colours[i % len(colours)], marker="o", linewidth=1.5, label=f"M={m}")
            for r in rows:
                ax.annotate(
                    f"ef={r['ef']}",
                    (r["p50_ms"], r["recall_at_1"]),
                    textcoords="offset points",
                    xytext=(4, -11 if i % 2 == 0 else 5),
                    fontsize=8,
                    color=colours[i % len(colours)],
                )
        ax.margins(x=0.08)
        ax.set_xlabel("median search latency, ms")
        ax.set_ylabel("recall@1 against brute force")
        low = min(r["recall_at_1"] for r in hnsw)
        ax.set_ylim(max(0.0, low - (1.0 - low) * 0.3 - 0.01), 1.005)
        _percent_axis(ax)
        ax.legend(loc="lower right", fontsize=9)
        parts.append("<h3>HNSW: recall against latency</h3>")
        parts.append(_png(fig, "HNSW recall at 1 against median latency, per ef and M"))
    else:
        parts.append('<p class="thin">No HNSW settings were replayed.</p>')

    candidates = search.get("candidates") or []
    if candidates:
        cells = "".join(f"<tr><td>{_int(c.get('k', 0))}</td><td>{_pct(c.get('recall'))}</td></tr>" for c in candidates)
        parts.append(
            "<h3>Candidates per lookup</h3><table><thead><tr><th>cache.candidates</th>"
            f"<th>right stored question among the nearest</th></tr></thead><tbody>{cells}</tbody></table>"
        )

    vetoes = search.get("vetoes") or {}
    if vetoes.get("on") or vetoes.get("off"):
        parts.append(
            "<h3>Exact vetoes</h3><table><thead><tr><th>vetoes on</th><th>vetoes off</th></tr></thead>"
            f"<tbody><tr><td>{_outcome(vetoes.get('on'))}</td><td>{_outcome(vetoes.get('off'))}</td></tr>"
            "</tbody></table>"
        )

    models = search.get("embedding_models") or []
    if models:
        parts.append(f"<p>Embedding models compared: {', '.join(f'<code>{_e(m)}</code>' for m in models)}.</p>")
    chosen = search.get("chosen") or {}
    if chosen:
        items = "".join(f"<li><code>{_e(key)} = {_e(_setting(value))}</code></li>" for key, value in chosen.items())
        parts.append(f"<p>Settings the search chose:</p><ul>{items}</ul>")
    else:
        parts.append("<p>The search chose no setting other than today's.</p>")
    parts.append("</section>")
    return "".join(parts)


def _proposal(proposal: Mapping[str, Any] | None) -> str:
    title = '<section id="proposal"><h2>Proposed change</h2>'
    if not proposal:
        return f'{title}<p class="thin">Nothing to propose: no finding passed the gates.</p></section>'
    files = "".join(f"<li><code>{_e(name)}</code></li>" for name in proposal.get("files") or [])
    diff = proposal.get("diff") or ""
    shown = f'<pre class="diff">{_diff(diff)}</pre>' if diff else '<p class="thin">The diff is empty.</p>'
    slug = _e(proposal.get("slug", ""))
    return f"{title}<p>Branch slug <code>{slug}</code>, files:</p><ul>{files}</ul>{shown}</section>"


def _proposals(proposals: Sequence[Mapping[str, Any]]) -> str:
    title = '<section id="proposals"><h2>Proposals so far</h2>'
    if not proposals:
        return f'{title}<p class="thin">No proposals yet.</p></section>'
    rows = "".join(
        "<tr>"
        f"<td>{_int(p.get('id', 0))}</td>"
        f"<td><code>{_e(p.get('branch', ''))}</code></td>"
        f'<td><span class="status {_e(p.get("status", ""))}">{_e(p.get("status", ""))}</span></td>'
        f"<td>{_e(_when(p.get('created')))}</td>"
        f"<td>{_e(p.get('summary', ''))}</td>"
        "</tr>"
        for p in proposals
    )
    head = "<tr><th>id</th><th>branch</th><th>status</th><th>created (UTC)</th><th>what it changed</th></tr>"
    return f"{title}<table><thead>{head}</thead><tbody>{rows}</tbody></table></section>"


# --- formatting -------------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _threshold(point: Out) -> float:
    return float(point["threshold"])


def _int(value: object) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else _e(value)


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "&mdash;"


def _pct(value: object) -> str:
    if not isinstance(value, int | float):
        return "&mdash;"
    share = 100.0 * value
    return f"{share:.0f}%" if share == round(share) else f"{share:.1f}%" if share >= 1 else f"{share:.2f}%"


def _outcome(out: Out | None) -> str:
    if not out:
        return "&mdash;"
    served = f"{_int(out.get('served', 0))}/{_int(out.get('right_pairs', 0))} ({_pct(out.get('served_rate'))})"
    wrong = (
        f"{_int(out.get('wrong', 0))}/{_int(out.get('wrong_pairs', 0))} ({_pct(out.get('wrong_rate'))}, "
        f"&le;&nbsp;{_pct(out.get('wrong_upper95'))})"
    )
    return f"served {served}<br>wrong {wrong}"


def _when(ts: object) -> str:
    if not isinstance(ts, int | float):
        return "unknown"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"


def _setting(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _diff(diff: str) -> str:
    """The unified diff, escaped, with added and removed lines marked for colour."""
    lines = []
    for line in diff.splitlines():
        escaped = _e(line)
        if line.startswith(("+++", "---")):
            lines.append(f'<span class="file">{escaped}</span>')
        elif line.startswith("+"):
            lines.append(f'<span class="add">{escaped}</span>')
        elif line.startswith("-"):
            lines.append(f'<span class="del">{escaped}</span>')
        elif line.startswith("@@"):
            lines.append(f'<span class="hunk">{escaped}</span>')
        else:
            lines.append(escaped)
    return "\n".join(lines)


_CSS = """
body { margin: 0; background: #fafafa; color: #222; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 24px; background: #fff; }
h1 { margin: 0 0 12px; font-size: 26px; }
h2 { margin: 32px 0 8px; font-size: 20px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { margin: 20px 0 6px; font-size: 16px; }
img { display: block; max-width: 100%; height: auto; margin: 8px 0; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; }
table.facts th { background: #f7f7f7; font-weight: 600; }
td.yes { color: #006b4f; font-weight: 600; }
td.no { color: #a33b00; }
.thin { color: #555; font-style: italic; }
code, pre { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre.diff { background: #f6f8fa; border: 1px solid #ddd; padding: 10px; overflow-x: auto; }
pre.diff .add { color: #116329; background: #e6ffec; }
pre.diff .del { color: #82071e; background: #ffebe9; }
pre.diff .hunk { color: #6639ba; }
pre.diff .file { font-weight: 600; }
.status { padding: 1px 6px; border-radius: 3px; background: #eee; }
.status.applied { background: #dafbe1; }
.status.rejected { background: #ffebe9; }
.status.reverted { background: #fff1d6; }
"""
