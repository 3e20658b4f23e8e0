"""One ``learn`` run: gather labels, calibrate, search, and say what a proposal would change, with its evidence.

``study`` reads and computes only; it writes nothing, so ``--dry-run`` is ``study`` plus printing, and a real run
is ``study`` plus ``proposals.propose``. The evidence holds aggregates only (counts, rates, bounds, thresholds,
dates, the command): never a question or an answer.
"""

from __future__ import annotations

import copy
import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicache.learn import calibrate, labelled, refit, search
from aicache.learn.labelled import LabelledPair

if TYPE_CHECKING:
    from aicache.config import Settings

SCHEMA = "aicache.learn/1"
MIN_GROUP_PAIRS = 50  # a template with fewer labels shares the global threshold
# The calibration of the model that reads the cached answer, on the pairs whose entry kept its answer's vector
# (template names are file names: none has a space).
ANSWER_GROUP = "answer model"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Study:
    """What one run found, and the settings it would change."""

    window: tuple[float, float] | None
    counts: dict[str, Any]
    decision: str
    max_wrong: float
    calibrations: list[calibrate.Calibration]
    curve: dict[str, Any]
    search: dict[str, Any]
    changes: dict[str, Any]  # dotted setting -> new value
    episode_ids: list[int] = field(default_factory=list)
    command: str = "aicache learn"
    refit: refit.Refit | None = None  # None: the decision has no weights to refit (the rules)

    @property
    def artefacts(self) -> dict[str, bytes]:
        """Files the proposal carries beside learned.toml: the refitted model, when it passed the gates."""
        if self.refit is None or not self.refit.accepted or self.refit.artefact is None:
            return {}
        return {f"{refit.ARTEFACT_DIR}/decision.toml": self.refit.artefact}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "window": None if self.window is None else {"from": self.window[0], "to": self.window[1]},
            "counts": self.counts,
            "decision": self.decision,
            "max_wrong": self.max_wrong,
            "calibrations": [c.to_json() for c in self.calibrations],
            "curve": self.curve,
            "search": self.search,
            "refit": None if self.refit is None else self.refit.to_json(),
            "changes": self.changes,
            "command": self.command,
        }

    @property
    def slug(self) -> str:
        decision = "model" if "decision.directory" in self.changes else "threshold"
        parts = [decision if any(k.startswith("decision.") for k in self.changes) else ""]
        parts.append("ef-search" if "index.ef_search" in self.changes else "")
        return "-".join(p for p in parts if p) or "nothing"


def study(
    conn: sqlite3.Connection,
    settings: Settings,
    *,
    pair_files: Sequence[Path] = (),
    max_wrong: float = 0.01,
    command: str = "aicache learn",
    progress: Progress | None = None,
) -> Study:
    """Everything ``learn`` finds in the store (and ``pair_files``); nothing is written."""
    from aicache.semantic import decide

    tick = progress or (lambda _step, _done, _total: None)
    decision = decide.load(settings)
    pairs = labelled.from_store(conn)
    for path in pair_files:
        pairs.extend(labelled.from_pair_file(path))
    tick("scoring labelled pairs", 0, 1)
    scored = labelled.score(pairs, settings, decision)
    tick("scoring labelled pairs", 1, 1)
    groups = {"all": scored}
    for kind in sorted({p.kind for p in scored} - {"plain"}):
        members = [p for p in scored if p.kind == kind]
        if len(members) >= MIN_GROUP_PAIRS:
            groups[kind] = members
    calibrations = [
        calibrate.calibrate(name, members, _current(settings, decision, name), decision.floor, max_wrong)
        for name, members in groups.items()
    ]
    reader = decide.answer_reader(decision)
    answered = [replace(p, score=p.answer_score) for p in scored if p.answer_score is not None]
    if reader is not None and answered:
        calibrations.append(calibrate.calibrate(ANSWER_GROUP, answered, reader.threshold, decision.floor, max_wrong))
    refitted = _refit(settings, scored, calibrations[0], max_wrong, tick)
    tick("searching index settings", 0, 1)
    found = search.search(conn, settings, scored)
    found["vetoes"] = _vetoes_on_and_off(scored, calibrations[0], decision.floor, max_wrong)
    tick("searching index settings", 1, 1)
    return Study(
        window=_window(scored),
        counts=_counts(conn, scored),
        decision=decision.name,
        max_wrong=max_wrong,
        calibrations=calibrations,
        curve=_curve(scored, calibrations[0], decision),
        search=found,
        changes=_changes(calibrations, found, decision.name, refitted),
        episode_ids=sorted({p.episode_id for p in scored if p.episode_id is not None}),
        command=command,
        refit=refitted,
    )


def _refit(
    settings: Settings,
    pairs: Sequence[LabelledPair],
    finding: calibrate.Calibration,
    max_wrong: float,
    tick: Progress,
) -> refit.Refit | None:
    """The model refitted on the older part, measured against what would run without it: today's threshold, or
    the one calibration proposes."""
    from aicache.semantic import decide, decision, embeddings

    if str(settings.get("decision.kind", decide.DEFAULT_KIND)) != "model":
        return None
    config = decision.read_config(decision.model_directory(settings))
    if config.kind != "features":
        return None
    tick("refitting the decision model", 0, 1)
    older, newer = calibrate.split_by_time(pairs)
    baseline = finding.test_after if finding.accepted and finding.test_after is not None else finding.test_before
    found = refit.refit(older, newer, config, baseline, max_wrong, embeddings.model_id(settings))
    tick("refitting the decision model", 1, 1)
    return found


def _vetoes_on_and_off(
    pairs: Sequence[LabelledPair], with_vetoes: calibrate.Calibration, floor: float, max_wrong: float
) -> dict[str, Any]:
    """The exact rules' worth on this data: the global calibration again with no pair vetoed."""
    free = [replace(p, vetoed=False) for p in pairs]
    without = calibrate.calibrate("all", free, with_vetoes.current, floor, max_wrong)
    shown = lambda c: (c.test_after or c.test_before).to_json()  # noqa: E731
    return {"on": shown(with_vetoes), "off": shown(without)}


def _current(settings: Settings, decision: Any, group: str) -> float:
    if group == "all":
        return float(decision.threshold)
    configured = settings.get(f"decision.templates.{group}.threshold")
    return float(configured) if configured is not None else float(decision.threshold)


def _window(pairs: Sequence[LabelledPair]) -> tuple[float, float] | None:
    times = [p.ts for p in pairs if p.ts > 0]
    return (min(times), max(times)) if times else None


def _counts(conn: sqlite3.Connection, pairs: Sequence[LabelledPair]) -> dict[str, Any]:
    by_source: dict[str, int] = {}
    for pair in pairs:
        by_source[pair.source] = by_source.get(pair.source, 0) + 1
    episodes = int(conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0])
    return {
        "labels": len(pairs),
        "right": sum(p.good for p in pairs),
        "wrong": sum(not p.good for p in pairs),
        "by_source": by_source,
        "episodes": episodes,
    }


def _curve(pairs: Sequence[LabelledPair], finding: calibrate.Calibration, decision: Any) -> dict[str, Any]:
    from aicache.semantic import evaluate

    _older, newer = calibrate.split_by_time(pairs)
    return {
        "group": finding.group,
        "current": finding.current,
        "fitted": finding.fitted,
        "points": [calibrate.outcome(newer, t, decision.floor).to_json() for t in evaluate.sweep_points(decision)],
    }


def _changes(
    calibrations: Sequence[calibrate.Calibration],
    found: dict[str, Any],
    decision: str,
    refitted: refit.Refit | None = None,
) -> dict[str, Any]:
    if refitted is not None and refitted.accepted:
        # a new model: thresholds learned for the old one (global or per template) mean nothing for it
        # (the refitted model judges every candidate: the answer model, fitted on no label, steps aside)
        return {
            "decision.directory": refit.ARTEFACT_DIR,
            "decision.model": refitted.version,
            "decision.threshold": refitted.threshold,
            "decision.templates": None,
            "decision.answer_model": None,
            "decision.answer_threshold": None,
        } | found.get("chosen", {})
    changes: dict[str, Any] = {}
    question_model, _, reader = decision.removeprefix("model:").partition("+answer:")
    for finding in calibrations:
        if not finding.accepted or finding.fitted is None:
            continue
        if finding.group == ANSWER_GROUP:
            changes["decision.answer_threshold"] = round(finding.fitted, 4)
            changes["decision.answer_model"] = reader
            continue
        key = "decision.threshold" if finding.group == "all" else f"decision.templates.{finding.group}.threshold"
        changes[key] = round(finding.fitted, 4)
    if decision.startswith("model:") and any(not k.startswith("decision.answer_") for k in changes):
        # a threshold means something for one model only: here the one that reads the questions alone
        changes["decision.model"] = question_model
    changes.update(found.get("chosen", {}))
    return changes


def with_changes(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of settings ``data`` with each dotted setting of ``changes`` set (``None``: removed)."""
    merged = copy.deepcopy(data)
    for dotted, value in changes.items():
        node = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return merged


def learned_toml(current: dict[str, Any], changes: dict[str, Any]) -> bytes:
    """The learned settings file with ``changes`` applied to what it holds today."""
    import tomli_w

    header = "# Written by `aicache learn`: settings learned from your own episodes. Review with git; edit freely.\n"
    return (header + tomli_w.dumps(with_changes(current, changes))).encode("utf-8")


def evidence(found: Study) -> dict[str, Any]:
    """The proposal's evidence: aggregates only, as the commit message carries them."""
    return {
        "window": _dates(found.window),
        "counts": {k: v for k, v in found.counts.items() if k != "by_source"} | found.counts.get("by_source", {}),
        "decision": found.decision,
        "max_wrong": found.max_wrong,
        "calibrations": [
            {
                "group": c.group,
                "threshold_before": round(c.current, 4),
                "threshold_after": None if c.fitted is None else round(c.fitted, 4),
                "newer_served_before": f"{c.test_before.served}/{c.test_before.right}",
                "newer_wrong_before": f"{c.test_before.wrong}/{c.test_before.wrong_pairs}",
                "newer_wrong_bound_before": round(c.test_before.wrong_bound, 4),
                "newer_served_after": None if c.test_after is None else f"{c.test_after.served}/{c.test_after.right}",
                "newer_wrong_after": None
                if c.test_after is None
                else f"{c.test_after.wrong}/{c.test_after.wrong_pairs}",
                "newer_wrong_bound_after": None if c.test_after is None else round(c.test_after.wrong_bound, 4),
                "accepted": c.accepted,
            }
            for c in found.calibrations
        ],
        "refit": None if found.refit is None else _refit_evidence(found.refit),
        "changes": found.changes,
        "command": found.command,
    }


def _refit_evidence(found: refit.Refit) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "base": found.base,
        "version": found.version,
        "threshold": None if found.threshold is None else round(found.threshold, 6),
        "user_rows": found.user_rows,
        "shipped_rows": found.shipped_rows,
        "accepted": found.accepted,
    }
    parts = {
        "newer_before": found.baseline,
        "newer_after": found.after,
        "shipped_calibration_before": found.shipped_before,
        "shipped_calibration_after": found.shipped_after,
    }
    for name, seen in parts.items():
        evidence[f"{name}_served"] = None if seen is None else f"{seen.served}/{seen.right}"
        evidence[f"{name}_wrong"] = None if seen is None else f"{seen.wrong}/{seen.wrong_pairs}"
        evidence[f"{name}_wrong_bound"] = None if seen is None else round(seen.wrong_bound, 4)
    return evidence


def _dates(window: tuple[float, float] | None) -> str | None:
    if window is None:
        return None
    day = lambda ts: dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")  # noqa: E731
    return f"{day(window[0])}..{day(window[1])}"


def history(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Asks, hits and what they saved, one row per day (for the report)."""
    rows = conn.execute(
        """
        SELECT date(e.ts, 'unixepoch') AS day, COUNT(*),
               SUM(e.outcome = 'exact_hit'), SUM(e.outcome = 'semantic_hit'), SUM(e.outcome IN ('miss', 'refresh')),
               SUM(CASE WHEN e.outcome IN ('exact_hit', 'semantic_hit') THEN COALESCE(
                   (SELECT m.latency_ms FROM episodes m
                    WHERE m.entry_id = e.entry_id AND m.outcome IN ('miss', 'refresh') ORDER BY m.id LIMIT 1)
                   - e.latency_ms, 0) ELSE 0 END) / 1000.0,
               SUM(CASE WHEN e.outcome IN ('exact_hit', 'semantic_hit') THEN COALESCE(n.cost, 0) ELSE 0 END)
        FROM episodes e LEFT JOIN entries n ON n.id = e.entry_id
        GROUP BY day ORDER BY day
        """
    ).fetchall()
    return [
        {
            "day": str(day),
            "asks": int(asks),
            "exact_hits": int(exact or 0),
            "semantic_hits": int(semantic or 0),
            "misses": int(misses or 0),
            "saved_seconds": max(0.0, float(saved or 0.0)),
            "saved_cost": float(cost or 0.0),
        }
        for day, asks, exact, semantic, misses, saved, cost in rows
    ]
