"""``aicache learn`` end to end: the dry run writes nothing; a real run proposes a branch or records why not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AICACHE, cli_env
from tests.snapshot import differences, snapshot
from tests.test_cli import rows
from tests.test_semantic import export_run, model_home, onnx_models  # noqa: F401  (fixtures)

PAIRS = Path(__file__).resolve().parent / "data" / "heldout-pairs.jsonl"


def learn(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*AICACHE, "learn", *args], capture_output=True, env=cli_env(home), timeout=600, cwd=cwd, check=False
    )


def test_learn_with_no_labels_says_there_is_not_enough_and_proposes_nothing(aicache_home: Path) -> None:
    result = learn(aicache_home, "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["proposal"] is None and found["learn"]["changes"] == {}
    assert "not enough data" in found["learn"]["calibrations"][0]["why"]
    assert rows(aicache_home, "SELECT COUNT(*) FROM learn_runs WHERE finished IS NOT NULL") == [(1,)]


def test_a_dry_run_in_a_pipe_leaves_stderr_empty(aicache_home: Path) -> None:
    # The progress bar is for a terminal; in a pipe it used to leave one empty line on stderr (eval and reindex too).
    result = learn(aicache_home, "--dry-run")
    assert result.returncode == 0 and result.stdout and result.stderr == b""


@pytest.mark.slow
@pytest.mark.usefixtures("model_home")
def test_a_dry_run_writes_nothing_and_a_real_run_does_what_it_showed(aicache_home: Path) -> None:
    args = ("--pairs", str(PAIRS), "--max-wrong", "0.05", "--json")
    learn(aicache_home, "--json")  # the store and the learned-settings folder exist, as for any user
    # The store, the settings (config.toml, the learned-settings repository) and everything else in the home but
    # the derived caches a first model use fills (the ONNX export, the word lists' pickle): byte for byte.
    derived = {aicache_home / "data" / "cache", aicache_home / "data" / "models"}
    watched = [p for p in [*aicache_home.iterdir(), *(aicache_home / "data").iterdir()] if p not in derived]
    watched = [p for p in watched if p != aicache_home / "data"]
    before = snapshot(watched)
    dry = learn(aicache_home, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert differences(before, snapshot(watched)) == []
    assert {p.name for p in (aicache_home / "data").iterdir()} - {"cache", "models"} <= {p.name for p in watched}
    shown = json.loads(dry.stdout)
    from aicache.learn import labelled

    expected = len(labelled.from_pair_file(PAIRS))  # every paraphrase and near-miss against its own question
    assert shown["dry_run"] is True and shown["learn"]["counts"]["by_source"] == {"pairs": expected}
    real = json.loads(learn(aicache_home, *args).stdout)
    assert real["learn"]["changes"] == shown["learn"]["changes"]
    if shown["proposal"] is None:
        assert real["proposal"] is None
        return
    assert real["proposal"]["diff"] == shown["proposal"]["diff"]
    listed = json.loads(
        subprocess.run(
            [*AICACHE, "proposals", "list", "--json"], capture_output=True, env=cli_env(aicache_home), check=True
        ).stdout
    )
    assert [p["branch"] for p in listed["proposals"]] == [real["proposal"]["branch"]]


def confused_model(folder: Path) -> Path:
    """The shipped decision with the weights of opposite words and actions turned around: it ranks "disable" above
    "turn on" for "enable", so no threshold of it can serve the one without the other."""
    from aicache.semantic import decision, features

    config = decision.read_config(decision.DATA_DIR)
    coef = list(config.weights["coef"])
    for i, name in enumerate(features.terms(str(config.weights.get("basis", "linear")))):
        if name.endswith(("rule: opposite words", "rule: different action")):  # the rule and its cosine product
            coef[i] = 6.0
    weights = dict(config.weights, coef=coef)
    text = decision.features_toml("pair-features-confused", config.threshold, config.floor, weights, {}, "a test")
    folder.mkdir(parents=True)
    (folder / "decision.toml").write_text(text, encoding="utf-8")
    return folder


def logging_topics(path: Path, count: int) -> Path:
    """Topics whose paraphrase says it in other words and whose near-miss asks the opposite."""
    rows = [
        {
            "id": f"logging-{i}",
            "question": f"how do I enable logging for service{i}",
            "paraphrases": [f"how can I turn on logging for service{i}"],
            "negatives": [f"how do I disable logging for service{i}"],
        }
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.usefixtures("model_home")
def test_a_refitted_model_travels_in_its_proposal_and_judges_once_applied(aicache_home: Path, tmp_path: Path) -> None:
    confused = confused_model(tmp_path / "confused")
    (aicache_home / "config.toml").write_text(f'[decision]\ndirectory = "{confused}"\n', encoding="utf-8")
    pairs = logging_topics(tmp_path / "logging.jsonl", 1000)  # the newer 40% must be able to show 1%
    found = json.loads(learn(aicache_home, "--pairs", str(pairs), "--json").stdout)
    refitted = found["learn"]["refit"]
    assert refitted["base"] == "pair-features-confused" and refitted["accepted"], refitted["why"]
    assert refitted["newer_after"]["served"] > refitted["newer_before"]["served"]
    assert refitted["newer_after"]["wrong_upper95"] <= 0.01
    assert found["proposal"]["files"] == ["decision/decision.toml", "learned.toml"]
    subprocess.run(
        [*AICACHE, "proposals", "apply", str(found["proposal"]["id"])], env=cli_env(aicache_home), check=True
    )
    # config.toml names the confused model and wins over learned settings: once it goes, the applied model judges
    (aicache_home / "config.toml").unlink()
    probe = "from aicache import config\nfrom aicache.semantic import decide\nd = decide.load(config.load())\n"
    used = subprocess.run(
        [sys.executable, "-c", probe + "print(d.name, d.threshold)"],
        capture_output=True,
        env=cli_env(aicache_home),
        check=True,
        text=True,
    ).stdout.split()
    assert used == [f"model:{refitted['version']}", str(found["learn"]["changes"]["decision.threshold"])]
