"""``aicache eval``'s core: reading both file formats, scoring, intervals, and the real model on the dev set."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from aicache.errors import UsageError
from aicache.semantic import decision, evaluate
from aicache.semantic.evaluate import NEGATIVE, PARAPHRASE, UNRELATED, EvalSet, Probe, Rate, Served
from tests.conftest import AICACHE, cli_env

DATA = Path(__file__).resolve().parent / "data"


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def test_loads_dev_set_rows(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "rows.jsonl",
        [
            {"id": "x", "category": "py", "question": "q1", "paraphrases": ["p1", "p2"], "negatives": ["n1"]},
            {"id": "y", "question": "q2", "paraphrases": [], "negatives": []},
            {"id": "u", "question": "u1", "paraphrases": [], "negatives": [], "unrelated": True},
        ],
    )
    evalset = evaluate.load_pairs(path)
    assert evalset.stored == ("q1", "q2")
    assert evalset.probes == (
        Probe("p1", PARAPHRASE, 0, "py"),
        Probe("p2", PARAPHRASE, 0, "py"),
        Probe("n1", NEGATIVE, None, "py"),
        Probe("u1", UNRELATED, None, "unrelated"),
    )


def test_loads_plain_pairs_and_stores_each_question_once(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"a": "sort a list", "b": "order a list", "same_answer": True},
            {"a": "sort a list", "b": "sort a list descending", "same_answer": False},
            {"a": "merge dicts", "b": "combine two dicts", "same_answer": True, "category": "dict"},
        ],
    )
    evalset = evaluate.load_pairs(path)
    assert evalset.stored == ("sort a list", "merge dicts")
    assert [(p.text, p.kind, p.expected) for p in evalset.probes] == [
        ("order a list", PARAPHRASE, 0),
        ("sort a list descending", NEGATIVE, None),
        ("combine two dicts", PARAPHRASE, 1),
    ]
    assert evalset.probes[2].category == "dict"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "rows.jsonl:2: not JSON"),
        ('["a list"]', "rows.jsonl:2: expected a JSON object"),
        ('{"a": "x", "b": "y"}', "same_answer"),
        ('{"question": "q", "paraphrases": "not a list"}', "paraphrases must be a list"),
        ('{"hello": "world"}', "expected a 'question' row or an 'a'/'b' pair"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "q", "paraphrases": ["p"], "negatives": []}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        evaluate.load_pairs(path)


def test_public_pair_suites_are_read_as_they_are_published(tmp_path: Path) -> None:
    quora = tmp_path / "quora_duplicate_questions.tsv"
    quora.write_text(
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "0\t1\t2\tHow do I learn Go?\tWhat is the best way to learn Go?\t1\n"
        '1\t3\t4\t"A question that ""quotes""\nand spans two lines"\tHow do I learn Rust?\t0\n'
        "2\t5\t6\tHow do I learn Go?\tIs Go hard to learn?\t0\n",
        encoding="utf-8",
    )
    evalset = evaluate.load_pairs(quora)
    assert evalset.stored == ("How do I learn Go?", 'A question that "quotes"\nand spans two lines')
    assert [(p.text, p.kind, p.expected) for p in evalset.probes] == [
        ("What is the best way to learn Go?", PARAPHRASE, 0),
        ("How do I learn Rust?", NEGATIVE, None),
        ("Is Go hard to learn?", NEGATIVE, None),
    ]
    assert evalset.pairs == (0, 1, 0)
    paws = tmp_path / "paws.csv"
    paws.write_text("sentence1,sentence2,label\nflights from A to B,flights from B to A,0\n", encoding="utf-8")
    assert [p.kind for p in evaluate.load_pairs(paws).probes] == [NEGATIVE]
    jsonl = write_jsonl(tmp_path / "suite.jsonl", [{"question1": "x?", "question2": "y?", "is_duplicate": 1}])
    assert [p.kind for p in evaluate.load_pairs(jsonl).probes] == [PARAPHRASE]
    unlabelled = tmp_path / "bad.csv"
    unlabelled.write_text("question1,question2,is_duplicate\nx?,y?,maybe\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"bad.csv:2: is_duplicate must be true or false, 1 or 0 \(got 'maybe'\)"):
        evaluate.load_pairs(unlabelled)
    short = tmp_path / "short.tsv"
    short.write_text("question1\tquestion2\tis_duplicate\nonly one question\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"short\.tsv:2: is_duplicate must be"):
        evaluate.load_pairs(short)
    # A missing question is named by the file's own column, not by the field it is read into.
    empty = tmp_path / "empty.csv"
    empty.write_text("question1,question2,is_duplicate\nHow do I learn Go?,,0\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"empty\.csv:2: question2 must be a non-empty string"):
        evaluate.load_pairs(empty)
    blank = write_jsonl(tmp_path / "blank.jsonl", [{"sentence1": " ", "sentence2": "y", "label": 1}])
    with pytest.raises(UsageError, match=r"blank\.jsonl:1: sentence1 must be a non-empty string"):
        evaluate.load_pairs(blank)


def test_a_stored_questions_answer_is_read_when_the_file_gives_it(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "answered.jsonl",
        [
            {
                "question": "rename a git branch",
                "paraphrases": ["git branch -m?"],
                "negatives": [],
                "answer": "git branch -m new",
            },
            {"a": "list docker images", "b": "show my docker images", "same_answer": True, "answer": "docker images"},
            {"a": "list docker volumes", "b": "list docker networks", "same_answer": False},
        ],
    )
    evalset = evaluate.load_pairs(path)
    assert evalset.answers == ("git branch -m new", "docker images", None)
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"a": "x", "b": "y", "same_answer": True}])
    assert evaluate.load_pairs(plain).answers == ()  # no answers: every stored question is judged without one
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"a": "x", "b": "y", "same_answer": True, "answer": 3}])
    with pytest.raises(UsageError, match=r"bad.jsonl:1: answer must be a non-empty string"):
        evaluate.load_pairs(bad)


def test_a_file_with_answers_is_judged_by_the_model_that_reads_them(tmp_path: Path) -> None:
    rows = [
        {
            "question": "git check out a second branch in another folder without stashing my current work",
            "paraphrases": ["how does git worktree add work"],
            "negatives": ["git switch branches and carry my uncommitted changes along"],
        }
    ]
    answer = "Use `git worktree add ../other other-branch`: a second working tree beside the first."
    without = evaluate.run_eval(evaluate.load_pairs(write_jsonl(tmp_path / "a.jsonl", rows)), decision="model")
    answered = write_jsonl(tmp_path / "b.jsonl", [rows[0] | {"answer": answer}])
    for pairwise in (False, True):  # the store and the in-memory lookups alike
        report = evaluate.run_eval(evaluate.load_pairs(answered), decision="model", pairwise=pairwise)
        shipped = decision.read_config(decision.ANSWER_DIR)
        assert report.decision == without.decision and report.decision.endswith(f"+answer:{shipped.version}")
        assert report.to_json()["answer_threshold"] == shipped.threshold and without.answer_threshold is None


def test_a_sample_of_a_large_suite_is_the_same_rows_every_run(tmp_path: Path) -> None:
    rows = [{"a": f"stored question {i}", "b": f"asked question {i}", "same_answer": i % 2 == 0} for i in range(50)]
    path = write_jsonl(tmp_path / "suite.jsonl", rows)
    first, again = evaluate.load_pairs(path, sample=10), evaluate.load_pairs(path, sample=10)
    assert len(first.probes) == 10 and first.probes == again.probes
    numbers = [int(p.text.rsplit(" ", 1)[1]) for p in first.probes]
    assert numbers == sorted(numbers) and numbers != list(range(10))  # in file order, drawn from the whole file
    assert first.source.endswith("(a seeded sample of 10 of its 50 rows)")
    assert evaluate.load_pairs(path, sample=50).source == str(path)


@pytest.mark.parametrize("threshold", ["2", "-0.1", "nan"])
def test_eval_refuses_an_operating_point_outside_0_to_1(aicache_home: Path, tmp_path: Path, threshold: str) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"a": "sort a list", "b": "order a list", "same_answer": True}])
    refused = subprocess.run(
        [*AICACHE, "eval", str(path), "--threshold", threshold],
        capture_output=True,
        env=cli_env(aicache_home),
        timeout=120,
    )
    lines = refused.stderr.decode().splitlines()
    assert refused.returncode == 2 and refused.stdout == b"" and len(lines) == 1
    assert "is not a number from 0 to 1" in lines[0]


def test_an_empty_file_has_nothing_to_evaluate(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to evaluate"):
        evaluate.load_pairs(write_jsonl(tmp_path / "empty.jsonl", []))


def test_wilson_interval_on_known_values() -> None:
    # Reference values from the closed form (Wilson 1927), z = 1.96.
    assert evaluate.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert evaluate.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert evaluate.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert evaluate.wilson(1, 172) == pytest.approx((0.00103, 0.03214), abs=1e-4)
    assert evaluate.wilson(0, 0) == (0.0, 1.0)
    low, high = Rate(34, 240).interval
    assert low < 34 / 240 < high


def test_scoring_counts_each_outcome() -> None:
    evalset = EvalSet(
        "inline",
        ("q0", "q1"),
        (
            Probe("right", PARAPHRASE, 0, "a"),
            Probe("wrong", PARAPHRASE, 0, "a"),
            Probe("missed", PARAPHRASE, 1, "b"),
            Probe("near-miss served", NEGATIVE, None, "a"),
            Probe("near-miss refused", NEGATIVE, None, "b"),
            Probe("unrelated served", UNRELATED, None, "unrelated"),
        ),
    )
    served = {"right": 0, "wrong": 1, "near-miss served": 0, "unrelated served": 1}
    overall, categories = evaluate.score(evalset, lambda text, _i: Served(served.get(text), 0.8))
    assert overall.paraphrases_served == Rate(1, 3)
    assert overall.paraphrases_wrong == Rate(1, 3)
    assert overall.negatives_wrong == Rate(1, 2)
    assert overall.unrelated_wrong == Rate(1, 1)
    by_name = dict(categories)
    assert by_name["a"].paraphrases_served == Rate(1, 2)
    assert by_name["b"].negatives_wrong == Rate(0, 1)


def test_report_json_is_versioned() -> None:
    scores = evaluate.Scores(Rate(1, 2), Rate(0, 2), Rate(0, 3), Rate(0, 1))
    report = evaluate.EvalReport(
        source="x.jsonl",
        method="in-memory",
        model="m@1",
        decision="rules",
        threshold=0.5,
        floor=0.5,
        pairwise=False,
        stored=2,
        probes=6,
        overall=scores,
        categories=(("sql", scores),),
        sweep=(evaluate.SweepPoint(0.5, scores),),
    )
    shape = report.to_json()
    assert shape["schema"] == evaluate.SCHEMA == "aicache.eval/2"
    assert shape["overall"]["paraphrases_served"] == {
        "count": 1,
        "total": 2,
        "rate": 0.5,
        "low": pytest.approx(0.0945, abs=1e-4),
        "high": pytest.approx(0.9055, abs=1e-4),
        "upper95": pytest.approx(0.9747, abs=1e-4),
    }
    assert shape["decision"] == "rules" and shape["pairwise"] is False
    assert shape["categories"]["sql"]["negatives_wrong"]["total"] == 3
    assert shape["sweep"][0]["threshold"] == 0.5
    json.dumps(shape)


def test_best_safe_point_keeps_the_bound_on_wrong_answers_within_budget() -> None:
    # 0 wrong of 400 near-misses bounds the rate at 0.75%; 1 of 100 seen is 1%, but its bound is 4.7%.
    safe = evaluate.SweepPoint(0.8, evaluate.Scores(Rate(10, 100), Rate(0, 100), Rate(0, 400), Rate(0, 0)))
    greedy = evaluate.SweepPoint(0.6, evaluate.Scores(Rate(50, 100), Rate(0, 100), Rate(1, 100), Rate(0, 0)))
    assert evaluate.best_safe_point([greedy, safe]) == safe
    assert evaluate.best_safe_point([greedy]) is None


def test_a_probe_that_repeats_another_stored_question_is_owed_its_answer(tmp_path: Path) -> None:
    # The b of one pair is the a of another: stored, it is served its own answer, which is not a wrong answer.
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"a": "How do I open a savings account?", "b": "How do I close a savings account?", "same_answer": False},
        {"a": "how do i close a savings account", "b": "What closes a savings account?", "same_answer": True},
    ]
    pairs.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    evalset = evaluate._owed_repeats(evaluate.load_pairs(pairs))
    repeat = next(p for p in evalset.probes if p.text == "How do I close a savings account?")
    assert repeat.kind == evaluate.REPEAT and repeat.expected == 1
    overall, _ = evaluate.score(evalset, lambda text, _i: Served(1 if "close" in text.lower() else None, 1.0))
    assert overall.negatives_wrong.total == 0 and overall.repeats_wrong == Rate(0, 1)


def test_pairwise_probes_know_the_question_they_were_written_against(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"question": "q one", "paraphrases": ["p one"], "negatives": ["n one"]},
        {"a": "q two", "b": "p two", "same_answer": True},
    ]
    pairs.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    evalset = evaluate.load_pairs(pairs)
    assert [evalset.stored[i] for i in evalset.pairs] == ["q one", "q one", "q two"]


def test_clopper_pearson_bound_matches_the_beta_quantile() -> None:
    from aicache import stats

    # Reference values: scipy.stats.beta.ppf(0.95, k + 1, n - k)
    assert stats.upper_bound(0, 300) == pytest.approx(0.0099361, abs=1e-6)
    assert stats.upper_bound(1, 669) == pytest.approx(0.0070712, abs=1e-6)
    assert stats.upper_bound(52, 669) == pytest.approx(0.0969294, abs=1e-6)
    assert stats.upper_bound(0, 0) == 1.0
    # 600 near-misses: the bound allows 1 served (0.79%), not 2 (1.05%); ties at 0.9 serve all 200 or none.
    assert stats.most_permissive([0.9, 0.8, 0.1] * 200, 600, 0.01) == math.nextafter(0.9, math.inf)
    assert stats.most_permissive([0.95, 0.9, 0.8], 600, 0.01) == math.nextafter(0.9, math.inf)
    assert stats.most_permissive([0.9], 600, 0.01) == -math.inf  # the only servable one may be served
    assert stats.most_permissive([0.9], 100, 0.01) is None  # 100 cases cannot bound anything at 1%


@pytest.mark.slow
def test_dev_set_is_safe_and_useful_with_the_real_model() -> None:
    report = evaluate.run_eval(evaluate.load_pairs(DATA / "dev-pairs.jsonl"), decision="rules", sweep=True)
    overall = report.overall
    assert overall.negatives_wrong.rate <= 0.01, overall.negatives_wrong
    assert overall.unrelated_wrong.rate <= 0.01, overall.unrelated_wrong
    assert overall.paraphrases_wrong.rate <= 0.01, overall.paraphrases_wrong
    # Measured 35/240 (14.6%) at the defaults; cosine similarity alone serves none within the same bound.
    assert overall.paraphrases_served.rate >= 0.12, overall.paraphrases_served
    assert len(report.sweep) == len(evaluate.SWEEP)


@pytest.mark.slow
def test_heldout_set_is_safe_and_useful_with_the_real_model(aicache_home: Path) -> None:
    done: list[tuple[int, int]] = []
    evalset = evaluate.load_pairs(DATA / "heldout-pairs.jsonl")
    report = evaluate.run_eval(evalset, decision="rules", sweep=True, progress=lambda d, t: done.append((d, t)))
    overall = report.overall
    assert overall.negatives_wrong.rate <= 0.01, overall.negatives_wrong
    assert overall.unrelated_wrong.rate <= 0.01, overall.unrelated_wrong
    # Measured 81/159 (50.9%) at the defaults.
    assert overall.paraphrases_served.rate >= 0.45, overall.paraphrases_served
    points = len(report.sweep) + 1
    assert done[-1] == (report.probes * points, report.probes * points)
    assert {name for name, _ in report.categories} >= {"sql", "docker", "kubernetes", "rust", "go", "css"}
    # The temporary store lived under its own home: the user's has no store or index, and the variable is back.
    assert os.environ["AICACHE_HOME"] == str(aicache_home)
    assert not (aicache_home / "data" / "aicache.db").exists()
    assert not (aicache_home / "data" / "index.hnsw").exists()
    if not report.method.startswith("full path"):
        pytest.skip(f"the full path could not run: {report.method}")
    in_memory = next(p.scores for p in report.sweep if p.threshold == report.threshold)
    assert in_memory == overall, "the in-memory evaluator must agree with the real tiers"


@pytest.mark.slow
def test_trap_pairs_get_no_wrong_answer_with_the_real_model() -> None:
    # tests/data/trap-pairs.jsonl: hand-written traps (swapped roles, opposite words, versions, units) and
    # paraphrases, several of which the verifier got wrong before its direction and opposite-word fixes.
    report = evaluate.run_eval(evaluate.load_pairs(DATA / "trap-pairs.jsonl"), decision="rules")
    overall = report.overall
    assert overall.negatives_wrong.count == 0, overall.negatives_wrong
    assert overall.paraphrases_wrong.count == 0, overall.paraphrases_wrong
    assert overall.paraphrases_served.count >= 13, overall.paraphrases_served  # measured 16/26


@pytest.mark.slow
def test_general_language_traps_stay_within_the_one_known_failure() -> None:
    # tests/data/general-trap-pairs.jsonl: everyday questions (PAWS/QQP-like), outside the word lists. One
    # known wrong answer remains: "capital of australia" vs "largest city of australia" (two words for one;
    # see the README).
    report = evaluate.run_eval(evaluate.load_pairs(DATA / "general-trap-pairs.jsonl"), decision="rules")
    assert report.overall.negatives_wrong.count <= 1, report.overall.negatives_wrong
    assert report.overall.paraphrases_wrong.count == 0, report.overall.paraphrases_wrong
    assert report.overall.paraphrases_served.count >= 9, report.overall.paraphrases_served  # measured 11/16


@pytest.mark.slow
def test_the_trained_decision_serves_no_wrong_answer_on_sets_it_never_trained_on() -> None:
    # heldout-pairs.jsonl and general-trap-pairs.jsonl are kept out of training and calibration (training/pairs.py).
    # Measured (46234748907a at 0.880): heldout 39/159 paraphrases served, general traps 9/16
    # pairwise; no near-miss served.
    heldout = evaluate.run_eval(evaluate.load_pairs(DATA / "heldout-pairs.jsonl"), decision="model")
    assert heldout.decision.startswith("model:")
    assert heldout.overall.negatives_wrong.count == 0, heldout.overall.negatives_wrong
    assert heldout.overall.paraphrases_wrong.count == 0, heldout.overall.paraphrases_wrong
    assert heldout.overall.paraphrases_served.rate >= 0.15, heldout.overall.paraphrases_served
    traps = evaluate.run_eval(evaluate.load_pairs(DATA / "general-trap-pairs.jsonl"), decision="model", pairwise=True)
    assert traps.overall.negatives_wrong.count == 0, traps.overall.negatives_wrong
    assert traps.overall.paraphrases_served.count >= 5, traps.overall.paraphrases_served


# tests/data/heldout7-* to heldout17-*: written by people who never saw the repository (training/RESULTS.md
# sections 10 to 22). Measured (46234748907a at 0.880): round 7, developer 0/87 paraphrases served, 0/87
# near-misses given another's answer; everyday pairs 26/174, 0/171; Quora-style pairs 30/175, 0/173. Round 8,
# developer 4/210, 1/210; everyday pairs 31/171, 2/162; Quora-style pairs 15/66, 0/66. Round 9 (read once, the
# guard of section 12), developer 1/156, 1/156 ("git always take theirs ... during a rebase" given the answer
# of "git keeps asking me to resolve the same conflict on every rebase"); everyday pairs 25/141, 0/143;
# Quora-style pairs 18/62, 0/60. Round 10 (read once, section 13), developer 1/183, 0/183; everyday pairs
# 21/141, 0/133 (1 before the veto on opposite bounds, which also took round 8's everyday pairs from 2 to 1);
# Quora-style pairs 14/60, 0/60. More wrong answers than measured fails, and so do fewer than about half the
# paraphrases served.
MEASURED_ON_FRESH_SETS = (
    ("heldout7-dev-families.jsonl", False, 0, 0),
    ("heldout7-everyday-pairs.jsonl", True, 0, 13),
    ("heldout7-quora-style-pairs.jsonl", True, 0, 15),
    ("heldout8-dev-families.jsonl", False, 1, 2),
    ("heldout8-everyday-pairs.jsonl", True, 1, 15),
    ("heldout8-quora-style-pairs.jsonl", True, 0, 7),
    ("heldout9-dev-families.jsonl", False, 1, 0),
    ("heldout9-everyday-pairs.jsonl", True, 0, 12),
    ("heldout9-quora-style-pairs.jsonl", True, 0, 9),
    ("heldout10-dev-families.jsonl", False, 0, 0),
    ("heldout10-everyday-pairs.jsonl", True, 0, 10),
    ("heldout10-quora-style-pairs.jsonl", True, 0, 7),
    # Round 11 (read once, section 15) gives each stored question's answer, so the model that reads it judges;
    # since round 13 that is efd736df8310 (section 17), which gives, pairwise: developer 17/303, 3/303;
    # everyday pairs 29/141, 1/139; Quora-style pairs 20/59, 0/55.
    ("heldout11-dev-families.jsonl", True, 3, 8),
    ("heldout11-everyday-pairs.jsonl", True, 1, 14),
    ("heldout11-quora-style-pairs.jsonl", True, 0, 10),
    # Round 12 (read once, section 16): developer 20/279, 1/279; everyday pairs 29/94, 2/92; Quora-style
    # pairs 13/83, 1/82.
    ("heldout12-dev-families.jsonl", True, 1, 10),
    ("heldout12-everyday-pairs.jsonl", True, 2, 14),
    ("heldout12-quora-style-pairs.jsonl", True, 1, 6),
    # Round 13 (read once, section 17): developer 11/228, 1/228; everyday pairs 11/83, 1/79; Quora-style
    # pairs 16/56, 0/51; generated light edits of its stored questions 216/268 (238 since the exact tier
    # reads a question without its courtesy: 181 of them differ only by it).
    ("heldout13-dev-families.jsonl", True, 1, 5),
    ("heldout13-everyday-pairs.jsonl", True, 1, 5),
    ("heldout13-quora-style-pairs.jsonl", True, 0, 8),
    ("heldout13-light-edits.jsonl", True, 0, 220),
    # Round 14 (read once, section 18): developer 3/282, 1/282; everyday pairs 14/100, 1/100; Quora-style
    # pairs 13/65, 0/66; light edits 351/415.
    ("heldout14-dev-families.jsonl", True, 1, 1),
    ("heldout14-everyday-pairs.jsonl", True, 1, 7),
    ("heldout14-quora-style-pairs.jsonl", True, 0, 6),
    ("heldout14-light-edits.jsonl", True, 0, 320),
    # Round 15 (read once, section 20): developer 18/279, 0/279; everyday pairs 12/88, 0/84; Quora-style pairs
    # 21/64, 1/61.
    ("heldout15-dev-families.jsonl", True, 0, 9),
    ("heldout15-everyday-pairs.jsonl", True, 0, 6),
    ("heldout15-quora-style-pairs.jsonl", True, 1, 10),
    # Round 16 (read once, section 21): developer 11/261, 0/261; everyday pairs 19/95, 2/91; Quora-style pairs
    # 17/60, 0/54.
    ("heldout16-dev-families.jsonl", True, 0, 5),
    ("heldout16-everyday-pairs.jsonl", True, 2, 9),
    ("heldout16-quora-style-pairs.jsonl", True, 0, 8),
    # Round 17 (read once, section 22): developer 15/297, 2/297; everyday pairs 15/91, 0/98; Quora-style pairs
    # 17/61, 0/58.
    ("heldout17-dev-families.jsonl", True, 2, 7),
    ("heldout17-everyday-pairs.jsonl", True, 0, 7),
    ("heldout17-quora-style-pairs.jsonl", True, 0, 8),
)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "pairwise", "most_wrong", "least_served"), MEASURED_ON_FRESH_SETS)
def test_the_trained_decision_does_no_worse_than_measured_on_sets_by_people_who_never_saw_the_repository(
    name: str, pairwise: bool, most_wrong: int, least_served: int
) -> None:
    report = evaluate.run_eval(evaluate.load_pairs(DATA / name), decision="model", pairwise=pairwise)
    assert report.overall.negatives_wrong.count <= most_wrong, report.overall.negatives_wrong
    assert report.overall.paraphrases_wrong.count == 0, report.overall.paraphrases_wrong
    assert report.overall.paraphrases_served.count >= least_served, report.overall.paraphrases_served


@pytest.mark.slow
def test_a_sweep_over_the_model_visits_its_operating_points() -> None:
    report = evaluate.run_eval(evaluate.load_pairs(DATA / "trap-pairs.jsonl"), decision="model", sweep=True)
    assert [p.threshold for p in report.sweep] == list(evaluate.MODEL_SWEEP)
    served = [p.scores.paraphrases_served.count for p in report.sweep]
    assert served == sorted(served, reverse=True)  # a higher operating point never serves more
