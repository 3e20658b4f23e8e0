"""Does `learn` learn? A simulated user asks, gives feedback now and then, and learn re-calibrates the hit decision.

Usage: python benchmarks/learn_scenario.py [--seed 7] [--feedback 0.5] [--shadow 0.5] [--flip 0.05]
       [--max-wrong 0.01] [--one-stream] [--judge WRONG] [FILE ...]
(default: tests/data/heldout-pairs.jsonl, developer questions, and the held-out test topics of the everyday
families in training/data; neither was trained on; each FILE holds topic rows as tests/data/dev-pairs.jsonl.
``--one-stream``: one user asks all of them in one stream, with the developer test topics and the calibration
topics too: never trained on; the shipped threshold was chosen on the calibration topics, which favours the
defaults, never learning)

For each labelled set, with the real flow (``aicache.ask``: store, embeddings, index, hit decision, episodes) against
a local fake provider, and no network:

1. the cache is seeded with every topic's question;
2. a stream of asks: every paraphrase, every near-miss and questions of the other set (unrelated), in random order
   (fixed seed). After a semantic hit the simulated user gives feedback with probability ``--feedback``; after a
   lookup that refused its candidates a shadow check (the judge) labels the best refused one with probability
   ``--shadow``. Both follow the truth (same topic or not) with ``--flip`` of them flipped: people make mistakes;
3. run A keeps the defaults all along. Run B is the same stream: after its first 60%, ``learn`` studies the labels
   recorded so far and its proposed settings (if any) are used for the last 40%;
4. on the last 40%: paraphrases served their own topic's answer, near-misses and unrelated questions served any
   answer, for A and B, with Wilson intervals and the one-sided 95% Clopper–Pearson bound on wrong answers.

``--judge WRONG``: the LLM judge is on (``judge.enabled``, the default gray zone) and rules on the gray zone during
the asks, a simulated judge that follows the truth and is wrong with probability WRONG; its rulings are labels for
``learn`` as they are for a user, and the report counts its calls.

Labels are recorded through the same functions ``aicache feedback`` and shadow checks use. Serving a stored
paraphrase of the same topic counts as right: the stream grows the cache as a user's would.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import ROOT

HELDOUT = ROOT / "tests" / "data" / "heldout-pairs.jsonl"
LEARN_AT = 0.6


@dataclass(frozen=True)
class Ask:
    text: str
    kind: str  # paraphrase | negative | unrelated
    topic: str  # the topic a right answer belongs to ("" for unrelated; the near-miss's own id for a negative)


@dataclass
class Tally:
    served: dict[str, int] = field(default_factory=dict)  # kind -> right answers served (paraphrases)
    wrong: dict[str, int] = field(default_factory=dict)  # kind -> wrong answers served
    total: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, right: bool | None) -> None:
        self.total[kind] = self.total.get(kind, 0) + 1
        if right is True:
            self.served[kind] = self.served.get(kind, 0) + 1
        elif right is False:
            self.wrong[kind] = self.wrong.get(kind, 0) + 1


def read_topics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stream(topics: list[dict[str, Any]], others: list[dict[str, Any]], rng: random.Random) -> list[Ask]:
    asks = []
    for i, topic in enumerate(topics):
        tid = str(topic.get("id", i))
        asks += [Ask(p, "paraphrase", tid) for p in topic["paraphrases"]]
        asks += [Ask(n, "negative", f"{tid}/neg{j}") for j, n in enumerate(topic["negatives"])]
    unrelated = [t["question"] for t in others]
    asks += [Ask(q, "unrelated", "") for q in rng.sample(unrelated, min(len(unrelated), len(asks) // 5))]
    rng.shuffle(asks)
    return asks


def run(topics: list[dict[str, Any]], asks: list[Ask], args: argparse.Namespace, learn: bool) -> dict[str, Any]:
    """One run in a fresh home; returns the tally of the last 40% and what learn proposed (run B)."""
    import aicache
    from aicache import config, db, labels
    from aicache.learn import run as learn_run
    from tests.fakellm import FakeLLM

    home = Path(tempfile.mkdtemp(prefix="aicache-scenario-"))
    os.environ["AICACHE_HOME"] = str(home)
    models = Path(args.models)
    (home / "data").mkdir(parents=True)
    (home / "data" / "models").symlink_to(models, target_is_directory=True)
    topic_of: dict[str, str] = {t["question"]: str(t.get("id", i)) for i, t in enumerate(topics)}
    server = FakeLLM(respond=_simulated_judge(topic_of, {a.text: a.topic for a in asks}, args)).start()
    rng = random.Random(args.seed + 1)  # the same feedback and shadow draws in runs A and B
    try:
        settings = config.Settings(_with_judge(config.load().data | {"stream": False}, server.openai_url, args))
        conn = db.connect()
        common = {
            "settings": settings,
            "conn": conn,
            "base_url": server.openai_url,
            "key": "sk-test",
            "provider": "openai",
        }
        seeded = list(topic_of)
        for question in seeded:
            aicache.ask(question, **common)
        tally, learned = Tally(), None
        cut = int(len(asks) * LEARN_AT)
        for i, ask in enumerate(asks):
            if learn and i == cut:
                found = learn_run.study(conn, settings, max_wrong=args.max_wrong)
                learned = found.to_json()
                common["settings"] = settings = _apply(settings, found, home / "learned")
            result = aicache.ask(ask.text, **common)
            served_topic = _served_topic(conn, result, topic_of)
            right = None if served_topic is None else served_topic == ask.topic
            if i >= cut:
                tally.add(ask.kind, right)
            topic_of.setdefault(ask.text, ask.topic)  # a miss stored this question as an entry of its own topic
            _label(conn, labels, result, ask, topic_of, rng, args)
        return {"tally": tally, "learned": learned, "judged": _judged(conn, len(seeded) + cut)}
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _with_judge(data: dict[str, Any], url: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.judge is None:
        return data
    providers = data.get("providers", {}) | {"openai": data.get("providers", {}).get("openai", {}) | {"base_url": url}}
    return data | {"judge": {"enabled": True, "model": "judge-sim", "provider": "openai"}, "providers": providers}


def _simulated_judge(topic_of: dict[str, str], asked: dict[str, str], args: argparse.Namespace) -> Any:
    """The judge's replies: YES when the cached question is of the asked question's topic, wrong with probability
    ``args.judge``; None (the fake provider's own answer) for anything that is not a judge's prompt."""
    from aicache.semantic import judge

    head, rest = judge.TEMPLATE.split("{question}")
    between, rest = rest.split("{cached}")
    after = rest.split("{answer}")[0]  # the prompt's pieces around the new and the cached question
    rng = random.Random(args.seed + 2)

    def reply(body: dict[str, Any]) -> str | None:
        prompt = str((body.get("messages") or [{}])[-1].get("content", ""))
        if args.judge is None or body.get("model") != "judge-sim" or not prompt.startswith(head):
            return None
        question, cached = prompt[len(head) :].split(between, 1)
        right = topic_of.get(cached.split(after, 1)[0]) == asked.get(question)
        return "YES" if right != (rng.random() < args.judge) else "NO"

    return reply


def _judged(conn: Any, first: int) -> int:
    """How many asks the judge ruled on, from the ``first``-th episode on (one episode per ask, in order)."""
    rows = conn.execute("SELECT verdicts FROM episodes ORDER BY id").fetchall()[first:]
    return sum(any("judge" in v for v in json.loads(r[0] or "[]")) for r in rows)


def _apply(settings: Any, found: Any, folder: Path) -> Any:
    """The settings with what learn proposed, as `proposals apply` would leave them (artefacts in ``folder``)."""
    from aicache import config
    from aicache.learn import run

    changes = dict(found.changes)
    for name, data in found.artefacts.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    if "decision.directory" in changes:  # relative to learned.toml's folder, as config.load reads it
        changes["decision.directory"] = str(folder / changes["decision.directory"])
    return config.Settings(run.with_changes(settings.data, changes))


def _served_topic(conn: Any, result: Any, topic_of: dict[str, str]) -> str | None:
    if result.outcome not in ("exact_hit", "semantic_hit"):
        return None
    row = conn.execute("SELECT question FROM entries WHERE id = ?", (result.entry_id,)).fetchone()
    return topic_of.get(str(row[0]), "?")


def _label(
    conn: Any, labels: Any, result: Any, ask: Ask, topic_of: dict[str, str], rng: random.Random, args: Any
) -> None:
    from aicache import db

    flip = rng.random() < args.flip
    if result.outcome == "semantic_hit":
        if rng.random() < args.feedback:
            right = _served_topic(conn, result, topic_of) == ask.topic
            with db.write_transaction(conn):
                labels.label_episode(conn, result.episode_id, right != flip, "feedback")
        return
    if result.outcome != "miss":
        return
    row = conn.execute("SELECT verdicts FROM episodes WHERE id = ?", (result.episode_id,)).fetchone()
    refused = [v for v in json.loads(row[0] or "[]") if not v["accepted"]]
    if not refused or rng.random() >= args.shadow:
        return
    best = max(refused, key=lambda v: v.get("score", v["similarity"]))
    right = topic_of.get(best["question"]) == ask.topic
    with db.write_transaction(conn):
        labels.label_pair(conn, result.episode_id, int(best["entry_id"]), right != flip, "shadow")


def rate(count: int, total: int, bound: bool = False) -> str:
    from aicache import stats
    from aicache.semantic.evaluate import wilson

    if not total:
        return "-"
    low, high = wilson(count, total)
    text = f"{count}/{total} = {100 * count / total:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
    return f"{text} (<= {100 * stats.upper_bound(count, total):.1f}%)" if bound else text


def report(name: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    print(f"\n{name}: last {100 * (1 - LEARN_AT):.0f}% of the stream")
    print(f"  {'':<10} {'paraphrases served':<28} {'near-misses wrong (bound)':<38} unrelated wrong (bound)")
    for label, run_ in (("defaults", a), ("learned", b)):
        t = run_["tally"]
        print(
            f"  {label:<10} {rate(t.served.get('paraphrase', 0), t.total.get('paraphrase', 0)):<28} "
            f"{rate(t.wrong.get('negative', 0), t.total.get('negative', 0), True):<38} "
            f"{rate(t.wrong.get('unrelated', 0), t.total.get('unrelated', 0), True)}"
        )
    learned = b["learned"] or {}
    for c in learned.get("calibrations", []):
        print(f"  learn ({c['group']}): {'proposed' if c['accepted'] else 'kept'}: {c['why']}")
    if learned.get("refit"):
        found = learned["refit"]
        print(f"  learn (refit): {'proposed' if found['accepted'] else 'kept'}: {found['why']}")
    print(f"  changes proposed: {learned.get('changes') or 'none'}")
    if a.get("judged") or b.get("judged"):
        print(f"  LLM judge calls in the last part: defaults {a['judged']}, learned {b['judged']}")
    tallies = {"defaults": a["tally"].__dict__, "learned": b["tally"].__dict__}
    return {name: tallies | {"learn": learned, "judged": {"defaults": a["judged"], "learned": b["judged"]}}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="*", type=Path, default=[])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--feedback", type=float, default=0.5)
    parser.add_argument("--shadow", type=float, default=0.5)
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--max-wrong", type=float, default=0.01)
    parser.add_argument("--json", action="store_true", help="also write benchmarks/out/learn_scenario.json")
    parser.add_argument(
        "--judge",
        type=float,
        default=None,
        metavar="WRONG",
        help="turn the LLM judge on: a simulated judge, wrong with this probability, rules on the gray zone",
    )
    parser.add_argument(
        "--one-stream",
        action="store_true",
        help="one user asking every set's questions (by default the held-out developer pairs and the test and "
        "calibration topics, developer and everyday): a stream long enough for the 299 wrong-answer labels a 1%% "
        "bound needs",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.models = _export_models()
    if not args.files:
        from training.pairs import write_test_split

        out = Path(tempfile.mkdtemp(prefix="aicache-scenario-sets-"))
        split = write_test_split(out)
        calibration = write_test_split(out, split="calibration") if args.one_stream else []
        args.files = [HELDOUT, *split, *calibration] if args.one_stream else [HELDOUT, split[1]]
    sets = [read_topics(p) for p in args.files]
    if args.one_stream:
        args.files, sets = [Path("+".join(p.stem for p in args.files))], [[t for s in sets for t in s]]
    results: dict[str, Any] = {}
    for i, (path, topics) in enumerate(zip(args.files, sets, strict=True)):
        others = [t for j, s in enumerate(sets) if j != i for t in s]
        asks = stream(topics, others, random.Random(args.seed))
        a = run(topics, asks, args, learn=False)
        b = run(topics, asks, args, learn=True)
        results |= report(path.name, a, b)
    if args.json:
        out = ROOT / "benchmarks" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "learn_scenario.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


def _export_models() -> str:
    """Prepare the embedding (and decision) models once, in a home every run links to."""
    home = Path(tempfile.mkdtemp(prefix="aicache-scenario-models-"))
    os.environ["AICACHE_HOME"] = str(home)
    from aicache import config
    from aicache.semantic import decide, embeddings

    settings = config.load()
    embeddings.get_embedder(settings)
    decide.load(settings)
    import atexit

    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return str(home / "data" / "models")


if __name__ == "__main__":
    main()
