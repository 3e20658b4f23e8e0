"""Shadow checks: label a share of the cache's decisions in the background, with the configured judge.

With ``learn.shadow_rate`` above 0 (and ``judge.model`` set), that share of asks that reached the semantic tier
starts this module as a detached process once the answer has been shown, so nothing waits for it:

* after a **semantic hit**, it asks the provider the same request again and lets the judge say whether the
  cached answer was acceptable, with the fresh answer for reference;
* after a **miss** whose candidates were all refused, the fresh answer is already in the store: the judge says
  whether the best refused candidate's answer would have been acceptable (no provider call).

Either way the ruling becomes a label (source ``shadow``) that ``learn`` calibrates from; a failed check labels
nothing. The request arrives on stdin as JSON (it can hold redacted piped input and the key of this run, which
must not show in a process list), never in argv or the environment.

    python -m aicache.learn.shadow < request.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aicache import config, db, labels
from aicache.errors import AicacheError


def _cached(conn: Any, entry_id: int) -> tuple[str, str] | None:
    row = conn.execute("SELECT question, answer FROM entries WHERE id = ?", (entry_id,)).fetchone()
    return (str(row[0]), str(row[1])) if row is not None else None


def _best_refused(conn: Any, episode_id: int) -> int | None:
    """The refused candidate the hit decision was surest of, from the episode's verdicts."""
    row = conn.execute("SELECT verdicts FROM episodes WHERE id = ?", (episode_id,)).fetchone()
    refused = [v for v in json.loads((row and row[0]) or "[]") if not v.get("accepted")]
    best = max(refused, key=lambda v: v.get("score", v.get("similarity", 0)), default=None)
    return int(best["entry_id"]) if best is not None else None


def _fresh_answer(job: dict[str, Any], settings: config.Settings) -> str:
    from aicache import templates
    from aicache.flow import to_provider
    from aicache.providers import get_provider
    from aicache.request import AskRequest

    asked = job["request"]
    request = AskRequest(
        question=asked["question"],
        provider=asked["provider"],
        model=asked["model"],
        base_url=asked.get("base_url"),
        system=asked.get("system"),
        input_text=asked.get("input_text"),
        template=templates.load(asked["template"]) if asked.get("template") else None,
        params=tuple((str(k), v) for k, v in asked.get("params", [])),
    )
    provider_request = to_provider(request, stream=False, api_key=job.get("key"), http=settings.http)
    completion = get_provider(request.provider).complete(provider_request, lambda _text: None)
    if not completion.complete:
        raise AicacheError("the provider's answer was cut short")
    return completion.text


def check(job: dict[str, Any]) -> labels.Label | None:
    """Run one shadow check; returns the label it recorded, or None when there was nothing to judge."""
    from aicache.semantic import judge

    settings = config.load()
    conn = db.connect()
    try:
        question, episode_id = job["request"]["question"], int(job["episode"])
        if job["kind"] == "hit":
            entry_id = int(job["entry"])
            cached = _cached(conn, entry_id)
            reference = _fresh_answer(job, settings) if cached is not None else None
        else:
            entry_id = _best_refused(conn, episode_id) or 0
            cached = _cached(conn, entry_id)
            fresh = _cached(conn, int(job["entry"])) if job.get("entry") else None
            reference = fresh[1] if fresh is not None else None
        if cached is None or reference is None:
            return None
        ruling = judge.rule(settings, question, cached[0], cached[1], reference=reference)
        if not ruling.answered:
            return None  # a failure or a hedge is not a NO here: a label must be an answer
        with db.write_transaction(conn):
            return labels.label_pair(conn, episode_id, entry_id, ruling.accepted, "shadow")
    finally:
        conn.close()


def main() -> None:
    try:
        check(json.loads(sys.stdin.read()))
    except (AicacheError, KeyError, ValueError):
        sys.exit(1)  # detached and silent: a failed check only means one label fewer


if __name__ == "__main__":
    main()
