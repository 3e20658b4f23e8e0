"""Unit tests of the small pure parts: normalization, keys, partitions, redaction, templates, input rules."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from aicache import db, redact
from aicache.aliases import resolve_model
from aicache.cachekeys import canonical_json, versioned_hash
from aicache.completions import SCRIPTS
from aicache.config import Settings, load
from aicache.errors import ConfigError, ExitCode, UsageError
from aicache.inputs import decode, read_limited, repair_argument
from aicache.normalize import normalize_question
from aicache.prepare import RawAsk, prepare
from aicache.request import AskRequest
from aicache.templates import load as load_template

ROOT = Path(__file__).resolve().parent.parent


def test_exit_codes_are_pinned() -> None:
    # Scripts and git hooks branch on these numbers: changing one is a breaking change.
    assert {c.name: c.value for c in ExitCode} == {
        "OK": 0,
        "ERROR": 1,
        "USAGE": 2,
        "PROVIDER": 3,
        "CACHE_MISS": 4,
        "CONFIG": 5,
        "STORE": 6,
        "PROPOSAL": 7,
        "INTERRUPTED": 130,
        "TERMINATED": 143,
        "PIPE_CLOSED": 141,
    }


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I undo the last commit?", "how do i undo the last commit"),
        ("  undo   last\tcommit  ", "undo last commit"),
        ("undo last commit?!...", "undo last commit"),
        ("ｕｎｄｏ last commit", "undo last commit"),
        # invisible format characters: zero-width space, BOM, soft hyphen, word joiner, joiner inside an emoji
        ("undo last commit\u200b", "undo last commit"),
        ("undo last\u200b commit", "undo last commit"),
        ("\ufeffundo last commit", "undo last commit"),
        ("undo last commit\u00ad", "undo last commit"),
        ("un\u2060do la\u00adst commit", "undo last commit"),
        ("what does \U0001f469\u200d\U0001f4bb mean", "what does \U0001f469\U0001f4bb mean"),
        # courtesy around the request
        ("Quick question: how do I undo the last commit, thanks!", "how do I undo the last commit"),
        ("hey, where does neovim look for init.lua please", "where does neovim look for init.lua"),
        ("Hello there! what is a monad? Thanks in advance.", "what is a monad"),
        ("Please tell me how many litter boxes I need for 3 cats", "how many litter boxes I need for 3 cats"),
        ("can you please explain rebase", "can you explain rebase"),
        ("what is a monad? please, thanks", "what is a monad"),
    ],
)
def test_near_verbatim_repeats_normalize_equal(a: str, b: str) -> None:
    assert normalize_question(a) == normalize_question(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sort ascending", "sort descending"),
        ("c++ ok", "c ok"),
        ("v2", "v3"),
        ("\u0600\u0661\u0662", "\u0661\u0662"),
        # a word of courtesy that is what is asked about stays
        ("how do you say thank you", "how do you say"),
        ("translate thanks", "translate"),
        ("how do I say thanks", "how do I say"),
        ("tell me a joke", "a joke"),
        ("please", ""),
    ],
)
def test_normalization_keeps_meaningful_differences(a: str, b: str) -> None:
    assert normalize_question(a) != normalize_question(b)


def test_versioned_hash_is_canonical() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert versioned_hash({"a": 1, "b": 2}) == versioned_hash({"b": 2, "a": 1})
    assert versioned_hash({"a": 1}).startswith("k1:")


BASE = AskRequest(question="explain this", provider="openai", model="gpt-4o-mini", base_url="http://x/v1")


@pytest.mark.parametrize(
    "changed",
    [
        {"model": "gpt-4o"},
        {"provider": "anthropic"},
        {"base_url": "http://y/v1"},
        {"system": "be terse"},
        {"params": (("temperature", 0.2),)},
        {"input_text": "diff --git a b"},
        {"template": load_template("commit-message")},
    ],
)
def test_every_partition_field_separates_answers(changed: dict[str, object]) -> None:
    other = dataclasses.replace(BASE, **changed)  # type: ignore[arg-type]
    assert other.partition_key != BASE.partition_key
    assert other.exact_key != BASE.exact_key


def test_equal_numbers_are_one_key() -> None:
    def with_params(*params: tuple[str, float | int]) -> AskRequest:
        return dataclasses.replace(BASE, params=params)

    assert with_params(("temperature", 0)).exact_key == with_params(("temperature", 0.0)).exact_key
    assert with_params(("temperature", -0.0)).exact_key == with_params(("temperature", 0)).exact_key
    assert with_params(("max_tokens", 100.0)).exact_key == with_params(("max_tokens", 100)).exact_key
    assert with_params(("temperature", 0.5)).exact_key != with_params(("temperature", 0)).exact_key
    assert with_params(("seed", 2**53 + 1)).exact_key != with_params(("seed", 2**53)).exact_key


def test_same_question_other_input_is_another_key() -> None:
    one = AskRequest(question="write a commit message", provider="openai", model="m", input_text="diff A")
    two = AskRequest(question="write a commit message", provider="openai", model="m", input_text="diff B")
    assert one.exact_key != two.exact_key


def test_redaction_covers_documented_secrets() -> None:
    text = (
        "key sk-proj-abcdefghijklmnopqrstuvwxyz0123 aws AKIAABCDEFGHIJKLMNOP\n"
        "ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnopqrstuvwxyz\n"
        "DB_PASSWORD=hunter2hunter\n"
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
        "token ghp_abcdefghijklmnopqrstuvwxyz0123456789ab\n"
    )
    result = redact.redact(text)
    for secret in ("sk-proj-abc", "AKIAABCD", "sk-ant-api03", "hunter2", "b3BlbnNzaC1", "ghp_abc"):
        assert secret not in result.text
    assert "[REDACTED:private-key]" in result.text
    assert len(result.found) >= 6


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = "how do I set a password for postgres user in docker compose?"
    assert redact.redact(text).text == text


def test_user_redaction_patterns() -> None:
    extra = redact.user_patterns([r"ACME-[0-9]{6}"])
    assert redact.redact("ticket ACME-123456 leaked", extra).text == "ticket [REDACTED:custom-1] leaked"
    with pytest.raises(ConfigError):
        redact.user_patterns(["(unclosed"])


def test_oversized_input_is_refused_before_reading_it_all() -> None:
    stream = io.BytesIO(b"x" * 10_000_000)
    with pytest.raises(UsageError, match="limit"):
        read_limited(stream, 1_000_000)
    assert stream.tell() == 1_000_001  # bounded memory: never more than limit + 1 bytes read


def test_invalid_utf8_is_replaced_with_a_warning() -> None:
    decoded = decode(b"caf\xe9 \x93quoted\x94")  # CP1252 bytes
    assert "\ufffd" in decoded.text and decoded.warning and "UTF-8" in decoded.warning
    repaired = repair_argument("lone \udce9 surrogate")
    assert repaired.warning and repaired.text.encode("utf-8")


def test_prepare_combines_stdin_and_redacts_before_the_request_exists() -> None:
    settings = load()
    raw = RawAsk(question="write a commit message", stdin=b"+API_TOKEN=abcd1234efgh\n")
    prepared = prepare(raw, settings)
    assert prepared.request.input_text is not None and "abcd1234" not in prepared.request.input_text
    assert "abcd1234" not in prepared.request.user_message()
    assert any("redacted" in w for w in prepared.warnings)


def test_prepare_refuses_an_empty_question_and_empty_stdin() -> None:
    with pytest.raises(UsageError, match="nothing to ask"):
        prepare(RawAsk(question="   ", stdin=b""), load())


def test_stdin_alone_is_the_question() -> None:
    prepared = prepare(RawAsk(question="", stdin=b"what is a monad\n"), load())
    assert prepared.request.question == "what is a monad" and prepared.request.input_text is None


def test_model_aliases_and_provider_guess() -> None:
    settings = Settings({**load().data, "aliases": {"fast": "ollama/llama3.2:1b", "big": "gpt-4o"}})
    assert resolve_model(settings, "fast", None) == ("ollama", "llama3.2:1b")
    assert resolve_model(settings, "big", None) == ("openai", "gpt-4o")
    assert resolve_model(settings, "claude-3-5-haiku-latest", None)[0] == "anthropic"
    with pytest.raises(ConfigError, match="unknown provider"):
        resolve_model(settings, "x", "nosuch")


def test_template_version_follows_its_content(aicache_home: Path) -> None:
    builtin = load_template("commit-message")
    user_dir = aicache_home / "templates"
    user_dir.mkdir(parents=True)
    (user_dir / "commit-message.toml").write_text('system = "mine"\nprompt = "{question}\\n{input}"\n')
    mine = load_template("commit-message")
    assert mine.system == "mine" and mine.version != builtin.version
    with pytest.raises(ConfigError, match="unknown template"):
        load_template("nope")


def test_completion_scripts_match_the_current_commands() -> None:
    for name, make in SCRIPTS.items():
        committed = (ROOT / "completions" / name).read_text(encoding="utf-8")
        assert committed == make(), f"completions/{name} is stale: run `make completions`"


def test_each_store_file_gets_its_own_id(tmp_path: Path) -> None:
    first, second = db.connect(tmp_path / "a.db"), db.connect(tmp_path / "b.db")
    known = db.store_id(first)
    assert len(known) == 32 and known != db.store_id(second)
    first.close()
    again = db.connect(tmp_path / "a.db")
    assert db.store_id(again) == known  # kept for the life of the file
    again.close()
    second.close()
