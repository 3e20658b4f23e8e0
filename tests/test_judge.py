"""The optional LLM judge decides only the gray zone, every ruling is recorded on the episode, and ``aicache eval``
calls it only when asked (``--judge``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aicache import config, db, labels, memory
from aicache.config import Settings
from aicache.errors import UsageError
from aicache.flow import AskContext, ask
from aicache.learn import labelled
from aicache.request import AskRequest
from aicache.semantic import evaluate
from tests.fakellm import FakeLLM, Reply

pytestmark = pytest.mark.slow  # loads the embedding model

STORED = "generate uuid in javascript"
GRAY = "crypto.randomUUID"  # no rule objects, but the wording is too far for the embedding alone (gray zone)
NEAR_MISS = "generate uuid in python"  # a rule refuses: never reaches the judge
KEEP = "how do I undo my last commit but keep the changes"
KEEP_ANSWER = "Run `git reset --soft HEAD~1`: the commit is undone and its changes stay staged."
KEEP_REWORDED = "undo my last commit but keep the changes"  # the trained decision: gray zone (0.86 < 0.92)


def _ctx(server: FakeLLM, judge_on: bool, decision: str = "rules") -> AskContext:
    data = config.load().data
    data["judge"] = {"enabled": judge_on, "model": "judge-model", "max_candidates": 1}
    data["decision"] = {"kind": decision}  # the uuid pairs are in the rules' gray zone (the model has its own)
    data["providers"]["openai"]["base_url"] = server.openai_url
    data["providers"]["openai"]["send_key_to_custom_base_url"] = True
    return AskContext(settings=Settings(data), conn=db.connect(), api_key="sk-test")


def _ask(ctx: AskContext, server: FakeLLM, question: str) -> str:
    request = AskRequest(question=question, provider="openai", model="m", base_url=server.openai_url)
    return ask(request, ctx, lambda _t: None).outcome


def test_judge_yes_serves_a_gray_zone_candidate(fake_llm: FakeLLM) -> None:
    ctx = _ctx(fake_llm, judge_on=True)
    fake_llm.enqueue(Reply.text("use crypto.randomUUID()"), Reply.text("YES"))
    assert _ask(ctx, fake_llm, STORED) == "miss"
    assert _ask(ctx, fake_llm, GRAY) == "semantic_hit"
    judge_call = fake_llm.requests[-1].body
    assert judge_call["model"] == "judge-model" and STORED in judge_call["messages"][-1]["content"]
    (episode,) = memory.search(ctx.conn, outcome="semantic_hit")
    assert episode["verdicts"][0]["judge"] == {"accepted": True, "reply": "YES", "model": "judge-model"}
    (model,) = memory.stats(ctx.conn)
    assert (model.judged, model.judge_yes, model.semantic_hits) == (1, 1, 1)  # `aicache stats` shows the judge's part


def test_judge_no_or_garbage_is_a_miss(fake_llm: FakeLLM) -> None:
    ctx = _ctx(fake_llm, judge_on=True)
    fake_llm.enqueue(Reply.text("use crypto.randomUUID()"), Reply.text("Maybe, it depends"), Reply.text("fresh"))
    _ask(ctx, fake_llm, STORED)
    assert _ask(ctx, fake_llm, GRAY) == "miss"
    assert len(fake_llm.requests) == 3  # stored question, judge, then the real call
    (episode,) = [e for e in memory.search(ctx.conn, outcome="miss") if e["question"] == GRAY]
    assert episode["verdicts"][0]["judge"]["accepted"] is False
    assert episode["verdicts"][0]["reasons"][-1] == "gray zone refused by the judge (judge-model): Maybe, it depends"
    assert [p for p in labelled.from_store(ctx.conn) if p.question == GRAY] == []  # a hedge is no label
    (model,) = memory.stats(ctx.conn)
    assert (model.judged, model.judge_yes) == (1, 0)


def test_a_judge_that_does_not_answer_in_time_is_a_no_and_the_ask_goes_on(fake_llm: FakeLLM) -> None:
    ctx = _ctx(fake_llm, judge_on=True)
    ctx.settings.data["judge"]["timeout"] = 0.5
    fake_llm.enqueue(Reply.text("use crypto.randomUUID()"), Reply.hang(30), Reply.text("fresh"))
    _ask(ctx, fake_llm, STORED)
    assert _ask(ctx, fake_llm, GRAY) == "miss"  # the real answer, after the judge gave up
    (episode,) = [e for e in memory.search(ctx.conn, outcome="miss") if e["question"] == GRAY]
    ruling = episode["verdicts"][0]["judge"]
    assert ruling["accepted"] is False and ruling["reply"].startswith("judge failed: timed out")
    assert len(fake_llm.requests) == 3  # stored question, the judge that gave up, then the real call


def test_the_judges_yes_and_no_are_labels_for_learn_until_someone_else_labels_the_pair(fake_llm: FakeLLM) -> None:
    ctx = _ctx(fake_llm, judge_on=True, decision="model")
    fake_llm.enqueue(Reply.text(KEEP_ANSWER), Reply.text("YES"))
    _ask(ctx, fake_llm, KEEP)
    assert _ask(ctx, fake_llm, KEEP_REWORDED) == "semantic_hit"
    (pair,) = labelled.from_store(ctx.conn)
    assert (pair.question, pair.cached, pair.good, pair.source) == (KEEP_REWORDED, KEEP, True, "judge")
    assert pair.answer_blob is not None  # the model that reads the answer is calibrated on it too
    (episode,) = memory.search(ctx.conn, outcome="semantic_hit")
    with db.write_transaction(ctx.conn):
        labels.label_episode(ctx.conn, int(episode["id"]), good=False, source="feedback")
    (pair,) = labelled.from_store(ctx.conn)
    assert (pair.good, pair.source) == (False, "feedback")  # the user's word replaces the judge's
    rules = _ctx(fake_llm, judge_on=True)
    fake_llm.enqueue(Reply.text("use crypto.randomUUID()"), Reply.text("NO"), Reply.text("fresh"))
    _ask(rules, fake_llm, STORED)
    assert _ask(rules, fake_llm, GRAY) == "miss"
    judged = [p for p in labelled.from_store(rules.conn) if p.question == GRAY]
    assert [(p.cached, p.good, p.source) for p in judged] == [(STORED, False, "judge")]


def test_judge_is_never_asked_about_rule_refusals_or_when_off(fake_llm: FakeLLM) -> None:
    ctx = _ctx(fake_llm, judge_on=True)
    _ask(ctx, fake_llm, STORED)
    assert _ask(ctx, fake_llm, NEAR_MISS) == "miss"
    assert all(r.body["model"] != "judge-model" for r in fake_llm.requests)
    off = _ctx(fake_llm, judge_on=False)
    assert _ask(off, fake_llm, GRAY) == "miss"
    assert all(r.body["model"] != "judge-model" for r in fake_llm.requests)


# `aicache eval` and the judge: it counts what the judge would be asked, and calls it only with --judge.


def test_judge_rules_on_the_trained_decisions_gray_zone(fake_llm: FakeLLM) -> None:
    ctx = _ctx(fake_llm, judge_on=True, decision="model")
    fake_llm.enqueue(Reply.text(KEEP_ANSWER), Reply.text("YES"))
    assert _ask(ctx, fake_llm, KEEP) == "miss"
    assert _ask(ctx, fake_llm, KEEP_REWORDED) == "semantic_hit"  # refused by the score alone, then the judge's YES
    (episode,) = memory.search(ctx.conn, outcome="semantic_hit")
    (verdict,) = episode["verdicts"]
    assert verdict["gray_zone"] and verdict["score"] < verdict["threshold"] and verdict["judge"]["accepted"]
    assert verdict["reasons"][-1] == "gray zone accepted by the judge (judge-model)"


def _eval_settings(server: FakeLLM, gray_zone: float = 0.30) -> Settings:
    data = config.load().data
    data["judge"] = {"enabled": True, "model": "judge-model", "max_candidates": 1, "gray_zone": gray_zone}
    data["providers"]["openai"]["base_url"] = server.openai_url
    data["providers"]["openai"]["send_key_to_custom_base_url"] = True
    return Settings(data)


def _pairs(tmp_path: Path, answer: str | None = KEEP_ANSWER) -> evaluate.EvalSet:
    row = {"a": KEEP, "b": KEEP_REWORDED, "same_answer": True} | ({"answer": answer} if answer else {})
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return evaluate.load_pairs(path)


@pytest.mark.parametrize("pairwise", [True, False], ids=["pairwise", "store-all"])
def test_eval_counts_what_the_judge_would_be_asked_and_never_calls_it_unasked(
    fake_llm: FakeLLM, tmp_path: Path, pairwise: bool
) -> None:
    settings = _eval_settings(fake_llm)  # judge.enabled in the settings: eval still calls nobody without --judge
    report = evaluate.run_eval(_pairs(tmp_path), settings=settings, decision="model", pairwise=pairwise)
    assert report.overall.paraphrases_served == evaluate.Rate(0, 1)
    assert report.overall.paraphrases_judged == evaluate.Rate(1, 1)  # one that is always right would serve it
    assert report.judge == evaluate.JudgeReport(model=None, gray_zone=0.30, max_candidates=1)
    narrow = evaluate.run_eval(
        _pairs(tmp_path), settings=_eval_settings(fake_llm, gray_zone=0.01), decision="model", pairwise=pairwise
    )
    assert narrow.overall.paraphrases_judged == evaluate.Rate(0, 1)  # 0.86 is more than 0.01 below 0.92
    assert fake_llm.requests == []


@pytest.mark.parametrize("pairwise", [True, False], ids=["pairwise", "store-all"])
def test_eval_with_judge_lets_the_configured_judge_rule_on_the_gray_zone(
    fake_llm: FakeLLM, tmp_path: Path, pairwise: bool
) -> None:
    fake_llm.enqueue(Reply.text("YES"))
    settings = _eval_settings(fake_llm)
    report = evaluate.run_eval(_pairs(tmp_path), settings=settings, decision="model", pairwise=pairwise, judge=True)
    assert report.overall.paraphrases_served == evaluate.Rate(1, 1)  # served on the judge's word
    assert report.overall.paraphrases_judged == evaluate.Rate(1, 1)
    assert report.judge is not None and report.judge.model == "judge-model"
    (call,) = fake_llm.requests
    prompt = call.body["messages"][-1]["content"]
    assert call.body["model"] == "judge-model" and KEEP_REWORDED in prompt and KEEP_ANSWER in prompt
    fake_llm.enqueue(Reply.text("NO"))
    refused = evaluate.run_eval(_pairs(tmp_path), settings=settings, decision="model", pairwise=pairwise, judge=True)
    assert refused.overall.paraphrases_served == evaluate.Rate(0, 1) and len(fake_llm.requests) == 2
    assert refused.judge is not None and refused.judge.unanswered == 0
    fake_llm.enqueue(Reply.text("It depends on the repository"))
    hedged = evaluate.run_eval(_pairs(tmp_path), settings=settings, decision="model", pairwise=pairwise, judge=True)
    assert hedged.overall.paraphrases_served == evaluate.Rate(0, 1)
    assert hedged.judge is not None and hedged.judge.unanswered == 1  # said, so a failing judge is not a strict one


def test_eval_with_judge_needs_the_answers_the_judge_reads_and_a_gray_zone(fake_llm: FakeLLM, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--judge needs every stored question's answer"):
        evaluate.run_eval(_pairs(tmp_path, answer=None), settings=_eval_settings(fake_llm), judge=True)
    with pytest.raises(UsageError, match="similarity alone has none"):
        evaluate.run_eval(_pairs(tmp_path), settings=_eval_settings(fake_llm), decision="cosine", judge=True)
    assert fake_llm.requests == []
