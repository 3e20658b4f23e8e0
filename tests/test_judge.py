"""The optional LLM judge decides only the verifier's gray zone, and every ruling is recorded on the episode."""

from __future__ import annotations

import pytest

from aicache import config, db, memory
from aicache.config import Settings
from aicache.flow import AskContext, ask
from aicache.request import AskRequest
from tests.fakellm import FakeLLM, Reply

pytestmark = pytest.mark.slow  # loads the embedding model

STORED = "generate uuid in javascript"
GRAY = "crypto.randomUUID"  # no rule objects, but the wording is too far for the embedding alone (gray zone)
NEAR_MISS = "generate uuid in python"  # a rule refuses: never reaches the judge


def _ctx(server: FakeLLM, judge_on: bool) -> AskContext:
    data = config.load().data
    data["judge"] = {"enabled": judge_on, "model": "judge-model", "max_candidates": 1}
    data["decision"] = {"kind": "rules"}  # the gray zone of these pairs is the rules' (the model has its own)
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


def test_judge_no_or_garbage_is_a_miss(fake_llm: FakeLLM) -> None:
    ctx = _ctx(fake_llm, judge_on=True)
    fake_llm.enqueue(Reply.text("use crypto.randomUUID()"), Reply.text("Maybe, it depends"), Reply.text("fresh"))
    _ask(ctx, fake_llm, STORED)
    assert _ask(ctx, fake_llm, GRAY) == "miss"
    assert len(fake_llm.requests) == 3  # stored question, judge, then the real call
    (episode,) = [e for e in memory.search(ctx.conn, outcome="miss") if e["question"] == GRAY]
    assert episode["verdicts"][0]["judge"]["accepted"] is False


def test_judge_is_never_asked_about_rule_refusals_or_when_off(fake_llm: FakeLLM) -> None:
    ctx = _ctx(fake_llm, judge_on=True)
    _ask(ctx, fake_llm, STORED)
    assert _ask(ctx, fake_llm, NEAR_MISS) == "miss"
    assert all(r.body["model"] != "judge-model" for r in fake_llm.requests)
    off = _ctx(fake_llm, judge_on=False)
    assert _ask(off, fake_llm, GRAY) == "miss"
    assert all(r.body["model"] != "judge-model" for r in fake_llm.requests)
