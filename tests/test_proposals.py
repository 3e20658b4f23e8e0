"""Proposals as git branches: real repositories in tmp_path, real git, the real store, the CLI as a subprocess.

Every git process gets its own HOME and no system config, so nothing here reads or writes the user's git
configuration. "The user's checkout is untouched" is checked the strict way: ``git status --porcelain``, HEAD
(the file and the commit it names) and the index file's bytes are the same before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aicache import config, db
from aicache.errors import ConfigError, ExitCode, ProposalError, UsageError
from aicache.hooks.git import LOCAL_GIT_ENV
from aicache.learn import proposals, settings_repo
from aicache.learn.settings_repo import SettingsRepo
from tests.conftest import AICACHE, ROOT, cli_env
from tests.snapshot import differences, snapshot

EVIDENCE: dict[str, Any] = {
    "command": "aicache learn --pairs pairs.jsonl",
    "window": {"from": "2026-11-01", "to": "2026-12-01"},
    "episodes": 412,
    "labelled": 97,
    "served": {"before": 0.31, "after": 0.44, "interval": [0.38, 0.5]},
    "wrong_upper": {"before": 0.009, "after": 0.0094},
    "decision_model": "pairmodel-v3",
}
LEARNED = b"[cache]\nthreshold = 0.78\n"


@pytest.fixture(autouse=True)
def git_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "git-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in (*LOCAL_GIT_ENV, "AICACHE_IN_HOOK"):
        monkeypatch.delenv(name, raising=False)
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Ada")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "ada@example.com")
    return home


def git(cwd: Path, *args: str, check: bool = True, **env: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    (path / "README.md").write_text("# demo\n")
    (path / "app.py").write_text("print('hi')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


def checkout_state(repo: Path) -> dict[str, Any]:
    """What must not change in the user's checkout."""
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir"))
    index = git_dir / "index"
    index_bytes = index.read_bytes() if index.exists() else None
    return {
        # GIT_OPTIONAL_LOCKS=0: the check itself must not refresh the index it compares
        "status": git(repo, "status", "--porcelain", "--untracked-files=all", GIT_OPTIONAL_LOCKS="0"),
        "HEAD file": (git_dir / "HEAD").read_bytes(),
        "HEAD": git(repo, "rev-parse", "HEAD"),
        "index": index_bytes,
        "files": snapshot([p for p in repo.iterdir() if p.name != ".git"]),
    }


def branches(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/aicache/")
    return dict(line.split(" ") for line in out.splitlines())


def propose(repo: SettingsRepo, files: dict[str, bytes] | None = None, slug: str = "threshold", **kw: Any) -> Any:
    return proposals.propose(
        repo, slug, files or {"learned.toml": LEARNED}, "learn: cache.threshold 0.85 -> 0.78", EVIDENCE, [3, 1, 2], **kw
    )


def today_branch(slug: str = "threshold") -> str:
    return f"aicache/learn/{time.strftime('%Y-%m-%d')}-{slug}"


# -- one branch, one commit, the evidence --------------------------------------------------------------------


def test_a_proposal_is_one_branch_with_one_commit_holding_the_evidence_and_the_files(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user")
    base = git(user, "rev-parse", "HEAD")
    made = propose(settings_repo.project_repo(user))

    assert made.branch == today_branch() and made.status == "proposed"
    assert branches(user) == {made.branch: made.commit}
    assert git(user, "rev-list", "--count", f"{base}..{made.branch}") == "1"
    assert git(user, "rev-parse", f"{made.branch}^") == base
    assert git(user, "show", f"{made.branch}:.aicache/learned.toml").encode() + b"\n" == LEARNED
    changed = git(user, "diff-tree", "-r", "--no-commit-id", "--name-only", made.branch)
    assert changed == ".aicache/learned.toml"  # everything else is the base's tree
    message = git(user, "log", "-1", "--format=%B", made.branch)
    assert message.startswith("learn: cache.threshold 0.85 -> 0.78\n")
    evidence = json.loads(message.split("Evidence (aggregates only):\n", 1)[1].split("\n\n", 1)[0])
    assert evidence == EVIDENCE
    assert git(user, "log", "-1", "--format=%an", made.branch) == "aicache learn"

    conn = db.connect()
    row = conn.execute("SELECT * FROM proposals").fetchone()
    assert (row["branch"], row["commit_sha"], row["repo"]) == (made.branch, made.commit, str(user / ".aicache"))
    run = conn.execute("SELECT * FROM learn_runs WHERE id = ?", [row["run_id"]]).fetchone()
    assert json.loads(run["episode_ids"]) == [1, 2, 3] and run["command"] == EVIDENCE["command"]


def test_aicache_creates_its_own_settings_repository(aicache_home: Path) -> None:
    artefact = bytes(range(256)) * 4  # a model file: binary, kept byte for byte
    made = propose(settings_repo.default_repo(), {"learned.toml": LEARNED, "models/head.bin": artefact})
    own = aicache_home / "learned"
    assert made.repo == str(own) and made.repo_kind == "default"
    assert git(own, "rev-list", "--count", made.branch) == "2"  # the repository's empty first commit, then ours
    assert git(own, "rev-parse", f"{made.branch}^") == git(own, "rev-parse", "main")
    assert git(own, "ls-tree", "-r", "--name-only", made.branch).split() == ["learned.toml", "models/head.bin"]
    blob = subprocess.run(["git", "cat-file", "blob", f"{made.branch}:models/head.bin"], cwd=own, capture_output=True)
    assert blob.stdout == artefact
    assert not (own / "learned.toml").exists()  # proposed, not applied
    assert config.load().get("cache.threshold") is None


# -- the user's checkout stays untouched -------------------------------------------------------------------


def _dirty(user: Path) -> None:
    (user / "app.py").write_text("print('changed')\n")
    (user / "notes.txt").write_text("untracked\n")


def _staged(user: Path) -> None:
    (user / "app.py").write_text("print('staged')\n")
    (user / ".aicache").mkdir()
    (user / ".aicache" / "learned.toml").write_text("[cache]\nthreshold = 0.5\n")
    git(user, "add", "app.py", ".aicache")
    (user / "app.py").write_text("print('staged, then edited')\n")


def _detached(user: Path) -> None:
    (user / "app.py").write_text("print('second')\n")
    git(user, "commit", "-q", "-am", "second")
    git(user, "checkout", "-q", "--detach", "HEAD~1")


def _branch_taken(user: Path) -> None:
    git(user, "branch", today_branch(), "HEAD")


@pytest.mark.parametrize("setup", [_dirty, _staged, _detached, _branch_taken])
def test_the_users_head_index_and_status_are_untouched(tmp_path: Path, setup: Any) -> None:
    user = make_repo(tmp_path / "user")
    setup(user)
    before, taken = checkout_state(user), branches(user)
    made = propose(settings_repo.project_repo(user))

    assert checkout_state(user) == before
    assert git(user, "rev-parse", f"{made.branch}^") == before["HEAD"]  # on top of HEAD, detached or not
    assert {k: v for k, v in branches(user).items() if k != made.branch} == taken  # nothing else moved
    if taken:
        assert made.branch == today_branch() + "-2"


@pytest.mark.parametrize("operation", ["rebase", "merge"])
def test_a_rebase_or_merge_in_progress_is_refused(tmp_path: Path, operation: str) -> None:
    user = make_repo(tmp_path / "user")
    git(user, "checkout", "-q", "-b", "other")
    (user / "app.py").write_text("print('other')\n")
    git(user, "commit", "-q", "-am", "other")
    git(user, "checkout", "-q", "trunk")
    (user / "app.py").write_text("print('trunk')\n")
    git(user, "commit", "-q", "-am", "trunk")
    git(user, operation, "other", check=False)  # stops on the conflict
    before = checkout_state(user)

    with pytest.raises(ProposalError, match=f"in the middle of a {operation}") as caught:
        propose(settings_repo.project_repo(user))
    assert caught.value.exit_code == ExitCode.PROPOSAL
    assert checkout_state(user) == before and branches(user) == {}
    assert db.connect().execute("SELECT COUNT(*) FROM proposals").fetchone()[0] == 0


def test_a_lost_race_fails_and_overwrites_nothing(tmp_path: Path) -> None:
    """Another process creates the branch between our name check and our update-ref: we fail, it keeps it."""
    user = make_repo(tmp_path / "user")
    repo = settings_repo.project_repo(user)
    conn = db.connect()
    with proposals._opened(repo) as g:
        commit, _ = proposals._make_commit(g, repo, {"learned.toml": LEARNED}, "ours")
        branch = proposals._free_branch(g, "threshold")
        git(user, "branch", branch, "HEAD")  # the other process wins
        theirs = git(user, "rev-parse", branch)
        with pytest.raises(ProposalError, match="created by someone else meanwhile"):
            proposals._publish(conn, g, repo, branch, commit, "threshold", EVIDENCE, [], None)
    assert git(user, "rev-parse", branch) == theirs
    assert conn.execute("SELECT COUNT(*) FROM proposals").fetchone()[0] == 0  # no row for a branch not made
    assert conn.execute("SELECT COUNT(*) FROM learn_runs").fetchone()[0] == 0


RACER = """
import os, sys, time
from pathlib import Path
from aicache.errors import AicacheError
from aicache.learn import proposals, settings_repo
go = Path(sys.argv[2])
Path(f"{go}-ready-{sys.argv[4]}").touch()  # imports done: start together, not staggered by start-up
while not go.exists():
    time.sleep(0.001)
try:
    made = proposals.propose(settings_repo.project_repo(Path(sys.argv[1])), "threshold",
                             {"learned.toml": sys.argv[3].encode()}, "race", {"racer": int(sys.argv[4])}, [])
    print(made.branch, made.commit)
except AicacheError as exc:
    print("FAILED", exc, file=sys.stderr)
    sys.exit(int(exc.exit_code))
"""


def test_two_proposals_at_once_never_overwrite_each_other(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user")
    before = checkout_state(user)
    go = tmp_path / "go"
    racers = []
    for n in range(3):  # separate stores, so only git orders them
        env = cli_env(tmp_path / f"home{n}")
        content = f"[cache]\nthreshold = 0.7{n}\n"
        racers.append(
            (
                content,
                subprocess.Popen(
                    [sys.executable, "-c", RACER, str(user), str(go), content, str(n)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    while not all(Path(f"{go}-ready-{n}").exists() or proc.poll() is not None for n, (_, proc) in enumerate(racers)):
        time.sleep(0.01)
    go.touch()
    made = {}
    for content, proc in racers:
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            branch, commit = out.split()
            made[branch] = (commit, content)
        else:
            assert proc.returncode == ExitCode.PROPOSAL and "nothing was overwritten" in err, err
    assert made  # somebody always wins
    for branch, (commit, content) in made.items():
        assert git(user, "rev-parse", branch) == commit  # what each winner made is what its branch holds
        assert git(user, "show", f"{branch}:.aicache/learned.toml") + "\n" == content
    assert set(branches(user)) == set(made)
    assert checkout_state(user) == before


def test_inside_a_hook_the_users_index_is_never_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aicache_home: Path
) -> None:
    """As when aicache runs from a hook of ``git commit``: GIT_DIR and GIT_INDEX_FILE name the user's files."""
    user = make_repo(tmp_path / "user")
    _staged(user)
    before = checkout_state(user)
    monkeypatch.setenv("GIT_DIR", str(user / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(user / ".git" / "index"))
    monkeypatch.setenv("GIT_WORK_TREE", str(user))

    own = propose(settings_repo.default_repo())  # into aicache's own repository, not the one GIT_DIR names
    mine = propose(settings_repo.project_repo(user), slug="mine")
    applied = proposals.apply(db.connect(), own.id)

    assert os.environ["GIT_INDEX_FILE"] == str(user / ".git" / "index")  # the caller's environment is restored
    assert "AICACHE_IN_HOOK" not in os.environ
    for name in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        monkeypatch.delenv(name)
    assert checkout_state(user) == before
    assert set(branches(user)) == {mine.branch}
    assert git(aicache_home / "learned", "rev-parse", "main") == applied.proposal.applied_commit


def test_aicache_commits_never_start_hooks(tmp_path: Path, git_home: Path) -> None:
    """A global hooks directory (such as aicache's own `hook install --global`) runs for none of our commits."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marker = tmp_path / "hook-ran"
    for name in (
        "pre-commit",
        "commit-msg",
        "post-commit",
        "post-merge",
        "prepare-commit-msg",
        "reference-transaction",
    ):
        (hooks / name).write_text(f"#!/bin/sh\necho {name} >> '{marker}'\n")
        (hooks / name).chmod(0o755)
    git(tmp_path, "config", "--global", "core.hooksPath", str(hooks))

    made = propose(settings_repo.default_repo())
    conn = db.connect()
    proposals.apply(conn, made.id)
    proposals.revert(conn, made.id)
    assert not marker.exists(), marker.read_text()


# -- preview writes nothing --------------------------------------------------------------------------------


def test_preview_writes_nothing(tmp_path: Path, aicache_home: Path) -> None:
    user = make_repo(tmp_path / "user")
    first = propose(settings_repo.default_repo())
    conn = db.connect()
    proposals.apply(conn, first.id)  # aicache's own repository, the store and a live learned.toml exist
    conn.close()  # closing checkpoints the WAL: a write of this test's, not of preview's
    _staged(user)
    watched = [aicache_home, user]
    before = snapshot(watched)

    files = {"learned.toml": b"[cache]\nthreshold = 0.74\n", "decision.bin": b"\0\1\2"}
    own = proposals.preview(settings_repo.default_repo(), files)
    project = proposals.preview(settings_repo.project_repo(user), files)

    assert differences(before, snapshot(watched)) == []
    assert "-threshold = 0.78\n+threshold = 0.74\n" in own
    assert "Binary files /dev/null and b/decision.bin differ" in own
    assert "--- /dev/null\n+++ b/.aicache/learned.toml\n" in project  # HEAD has no .aicache/ (only the index)


def test_preview_does_not_create_aicache_s_repository(aicache_home: Path) -> None:
    before = snapshot([aicache_home])
    diff = proposals.preview(settings_repo.default_repo(), {"learned.toml": LEARNED})
    assert diff == "--- /dev/null\n+++ b/learned.toml\n@@ -0,0 +1,2 @@\n+[cache]\n+threshold = 0.78\n"
    assert differences(before, snapshot([aicache_home])) == []


# -- apply, reject, revert -------------------------------------------------------------------------------


def cli(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AICACHE, "proposals", *args], env=cli_env(home), cwd=cwd or ROOT, capture_output=True, text=True, check=False
    )


def test_apply_reject_revert_round_trip(aicache_home: Path) -> None:
    own = settings_repo.default_repo()
    first = propose(own)
    second = propose(own, {"learned.toml": b"[learn]\nmax_wrong = 0.02\n"}, slug="budget")
    assert config.load().get("cache.threshold") is None

    applied = cli(aicache_home, "apply", str(first.id), "--json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["proposal"]["status"] == "applied"
    assert config.load().get("cache.threshold") == 0.78
    assert git(own.root, "status", "--porcelain") == ""
    again = cli(aicache_home, "apply", str(first.id))
    assert again.returncode == ExitCode.PROPOSAL and again.stderr.strip().endswith("`proposals revert` undoes it")
    assert again.stderr.count("\n") == 1

    rejected = cli(aicache_home, "reject", str(second.id), "--why", "budget too loose", "--json")
    assert rejected.returncode == 0, rejected.stderr
    assert json.loads(rejected.stdout)["proposal"]["why"] == "budget too loose"
    assert second.branch not in branches(own.root)

    reverted = cli(aicache_home, "revert", str(first.id))
    assert reverted.returncode == 0, reverted.stderr
    assert config.load().get("cache.threshold") is None
    assert not (own.root / "learned.toml").exists()
    assert git(own.root, "log", "-1", "--format=%s", "main").startswith("Revert")
    assert cli(aicache_home, "revert", str(first.id)).returncode == ExitCode.PROPOSAL

    listed = json.loads(cli(aicache_home, "list", "--json").stdout)["proposals"]
    assert [(p["id"], p["status"]) for p in listed] == [(second.id, "rejected"), (first.id, "reverted")]
    piped = [line.split("\t") for line in cli(aicache_home, "list").stdout.splitlines()]  # whole, not wrapped
    assert piped[0] == ["id", "created", "status", "branch", "repository", "why"]
    assert [row[0] for row in piped[1:]] == [str(second.id), str(first.id)]
    assert piped[1][2:] == ["rejected", second.branch, "aicache's own", "budget too loose"]
    shown = cli(aicache_home, "show", str(first.id))
    assert shown.returncode == 0 and '"decision_model": "pairmodel-v3"' in shown.stdout
    assert "+threshold = 0.78" in shown.stdout

    unknown = cli(aicache_home, "apply", "999")
    assert unknown.returncode == ExitCode.USAGE and "no proposal 999" in unknown.stderr
    assert cli(aicache_home, "list", "--status", "done").returncode == ExitCode.USAGE


def test_apply_of_a_deleted_branch_and_a_conflict_fail_clearly(aicache_home: Path) -> None:
    git(aicache_home.parent, "config", "--global", "merge.ff", "only")  # the user's taste, not for aicache's repo
    own = settings_repo.default_repo()
    gone = propose(own, slug="gone")
    git(own.root, "branch", "-D", gone.branch)
    result = cli(aicache_home, "apply", str(gone.id))
    assert result.returncode == ExitCode.PROPOSAL and f"branch {gone.branch} is gone" in result.stderr

    one = propose(own, {"learned.toml": b"[cache]\nthreshold = 0.7\n"}, slug="one")
    two = propose(own, {"learned.toml": b"[cache]\nthreshold = 0.9\n"}, slug="two")
    other = propose(own, {"index.toml": b"[index]\nef_search = 64\n"}, slug="other")
    assert cli(aicache_home, "apply", str(one.id)).returncode == 0
    merged = cli(aicache_home, "apply", str(other.id))  # based on the same commit as one: a merge commit
    assert merged.returncode == 0, merged.stderr
    assert git(own.root, "rev-list", "--count", "--merges", "main") == "1"
    main_before = git(own.root, "rev-parse", "main")
    clash = cli(aicache_home, "apply", str(two.id))
    assert clash.returncode == ExitCode.PROPOSAL and "conflicts" in clash.stderr
    assert git(own.root, "rev-parse", "main") == main_before
    assert git(own.root, "status", "--porcelain") == ""  # the merge was aborted cleanly
    assert proposals.get(db.connect(), two.id).status == "proposed"
    assert config.load().get("cache.threshold") == 0.7


def test_config_names_a_learned_value_and_unset_says_how_to_undo_it(aicache_home: Path) -> None:
    def aicache(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*AICACHE, *args], env=cli_env(aicache_home), capture_output=True, text=True, check=False)

    def source() -> tuple[Any, str]:
        got = json.loads(aicache("config", "get", "cache.threshold", "--json").stdout)
        return got["value"], got["source"]

    made = propose(settings_repo.default_repo())
    assert cli(aicache_home, "apply", str(made.id)).returncode == 0
    learned = aicache_home / "learned" / "learned.toml"
    assert source() == (0.78, "learned")
    shown = [line.split("\t") for line in aicache("config", "show").stdout.splitlines()]
    assert ["cache.threshold", "0.78", "the decision's", "learned"] in shown

    unset = aicache("config", "unset", "cache.threshold")
    assert unset.returncode == 0 and unset.stderr.count("\n") == 1
    assert unset.stderr.startswith("aicache: warning: cache.threshold is not set in ")
    assert f"has the learned value 0.78 from {learned}" in unset.stderr
    assert "`aicache proposals revert ID` undoes it" in unset.stderr
    assert source() == (0.78, "learned")  # nothing removed behind git's back
    assert aicache("config", "set", "cache.threshold", "0.9").returncode == 0
    assert source() == (0.9, "file")
    back = aicache("config", "unset", "cache.threshold")
    assert back.returncode == 0 and f"the learned value 0.78 from {learned} applies now" in back.stderr
    assert source() == (0.78, "learned")

    assert cli(aicache_home, "revert", str(made.id)).returncode == 0
    assert source() == (None, "default")
    assert "was not set" in aicache("config", "unset", "cache.threshold").stderr


def test_project_apply_writes_for_the_user_to_commit_and_refuses_local_changes(
    tmp_path: Path, aicache_home: Path
) -> None:
    user = make_repo(tmp_path / "user")
    made = propose(settings_repo.project_repo(user))
    (user / ".aicache").mkdir()
    (user / ".aicache" / "learned.toml").write_text("[cache]\nthreshold = 0.5\n")  # the user's uncommitted edit

    refused = cli(aicache_home, "apply", str(made.id), cwd=user)
    assert refused.returncode == ExitCode.PROPOSAL and "has local changes" in refused.stderr
    assert (user / ".aicache" / "learned.toml").read_text() == "[cache]\nthreshold = 0.5\n"

    (user / ".aicache" / "learned.toml").unlink()
    before = checkout_state(user)
    applied = cli(aicache_home, "apply", str(made.id), cwd=user)
    assert applied.returncode == 0, applied.stderr
    assert "git add .aicache && git commit" in applied.stderr
    assert (user / ".aicache" / "learned.toml").read_bytes() == LEARNED
    after = checkout_state(user)
    assert (after["HEAD"], after["HEAD file"], after["index"]) == (before["HEAD"], before["HEAD file"], before["index"])
    shown = subprocess.run(
        [*AICACHE, "config", "show"], env=cli_env(aicache_home), cwd=user, capture_output=True, text=True, check=True
    )
    assert "0.78" in shown.stdout  # the project's learned settings are live in that repository
    assert "cache.threshold\t0.78\tthe decision's\tlearned (project)\n" in shown.stdout

    git(user, "add", ".aicache")
    git(user, "commit", "-q", "-m", "learned threshold")
    reverted = cli(aicache_home, "revert", str(made.id), cwd=user)
    assert reverted.returncode == 0, reverted.stderr
    assert not (user / ".aicache" / "learned.toml").exists()
    assert "removed .aicache/learned.toml" in reverted.stderr + reverted.stdout  # there was none before: not "restored"
    assert git(user, "status", "--porcelain") == "D .aicache/learned.toml"  # for the user to commit, as apply was


def test_learn_in_a_project_whose_reverted_settings_are_not_committed_says_so_before_any_work(
    tmp_path: Path, aicache_home: Path
) -> None:
    # After `proposals revert`, .aicache/learned.toml is deleted but not committed: the live settings are the
    # defaults while HEAD still holds the learned file. learn --repo used to work for a minute, then compare its
    # proposal with HEAD and say "what the live settings already hold: nothing to propose".
    user = make_repo(tmp_path / "user")
    (user / ".aicache").mkdir()
    (user / ".aicache" / "learned.toml").write_bytes(LEARNED)
    git(user, "add", ".aicache")
    git(user, "commit", "-q", "-m", "learned threshold")
    (user / ".aicache" / "learned.toml").unlink()  # as `proposals revert` leaves it
    before = checkout_state(user)

    result = subprocess.run(
        [*AICACHE, "learn", "--repo"], env=cli_env(aicache_home), cwd=user, capture_output=True, text=True, check=False
    )
    assert result.returncode == ExitCode.PROPOSAL, result.stderr
    assert "has local changes" in result.stderr and "nothing to propose" not in result.stderr + result.stdout
    assert result.stdout == ""  # refused before the study: nothing found, nothing printed
    assert checkout_state(user) == before and branches(user) == {}

    # the library's own comparison says the same when the proposal is what HEAD holds but .aicache/ differs
    with pytest.raises(ProposalError, match="has local changes"):
        propose(settings_repo.project_repo(user))


# -- what may be written ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "evidence",
    [
        {"question": "how do I undo the last commit"},
        {"examples": ["git reset --soft HEAD~1"]},
        {"worst": {"answer": "Use `git stash`."}},
        {"command": "aicache ask how do I undo the last commit"},
        {"note": "x" * 81},
        {"bad key!": 1},
    ],
)
def test_evidence_with_free_text_is_refused_and_nothing_is_written(aicache_home: Path, evidence: Any) -> None:
    before = snapshot([aicache_home])
    with pytest.raises(UsageError, match="evidence"):
        proposals.propose(settings_repo.default_repo(), "x", {"learned.toml": LEARNED}, "learn: x", evidence, [])
    assert differences(before, snapshot([aicache_home])) == []


def test_evidence_of_aggregates_is_kept_as_given() -> None:
    evidence = EVIDENCE | {
        "generated": "2026-12-03T19:30:00Z",
        "window_days": "2026-11-01..2026-12-03",
        "decision": "model:pairmodel-v3",
        "calibrations": [{"group": "commit-message", "newer_served_after": "31/40", "threshold_after": None}],
        "changes": {"decision.templates.commit-message.threshold": 0.81, "index.ef_search": 64},
        "ok": True,
    }
    made = proposals.propose(settings_repo.default_repo(), "x", {"learned.toml": LEARNED}, "learn: x", evidence, [])
    assert made.evidence == evidence


def test_learned_files_may_set_only_learnable_sections(aicache_home: Path) -> None:
    with pytest.raises(UsageError, match="only the sections cache, decision, index, learn"):
        propose(settings_repo.default_repo(), {"learned.toml": b'[providers.openai]\nbase_url = "http://evil"\n'})
    own = aicache_home / "learned"
    own.mkdir(parents=True)
    (own / "learned.toml").write_text('provider = "command"\n')
    with pytest.raises(ConfigError, match="only the sections cache, decision, index, learn may be learned"):
        config.load()


def test_learned_settings_rank_below_the_users_config_and_environment(aicache_home: Path) -> None:
    own = aicache_home / "learned"
    own.mkdir(parents=True)
    (own / "learned.toml").write_text("[cache]\nthreshold = 0.8\ncandidates = 7\n")
    (aicache_home / "config.toml").write_text("[cache]\nthreshold = 0.9\n")
    settings = config.load()
    assert settings.get("cache.threshold") == 0.9 and settings.get("cache.candidates") == 7
    assert settings.get("cache.semantic") is True  # the defaults are still underneath


def test_reading_learned_settings_imports_no_git(aicache_home: Path) -> None:
    own = aicache_home / "learned"
    own.mkdir(parents=True)
    (own / "learned.toml").write_text("[cache]\nthreshold = 0.8\n")
    code = "import sys; from aicache import config; print(config.load().get('cache.threshold'), 'git' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(aicache_home), capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["0.8", "False"]


def test_reject_keeps_a_branch_that_gained_commits_and_revert_keeps_the_users_edits(
    tmp_path: Path, aicache_home: Path
) -> None:
    user = make_repo(tmp_path / "user")
    kept = propose(settings_repo.project_repo(user), slug="kept")
    git(user, "checkout", "-q", kept.branch)
    (user / "app.py").write_text("print('my work on the proposal branch')\n")
    git(user, "commit", "-q", "-am", "mine")
    git(user, "checkout", "-q", "trunk")
    refused = cli(aicache_home, "reject", str(kept.id))
    assert refused.returncode == ExitCode.PROPOSAL and "moved since it was proposed" in refused.stderr
    assert kept.branch in branches(user)

    made = propose(settings_repo.project_repo(user))
    assert cli(aicache_home, "apply", str(made.id)).returncode == 0
    (user / ".aicache" / "learned.toml").write_text("[cache]\nthreshold = 0.6\n")  # the user tuned it further
    clash = cli(aicache_home, "revert", str(made.id))
    assert clash.returncode == ExitCode.PROPOSAL and "changed since proposal" in clash.stderr
    assert (user / ".aicache" / "learned.toml").read_text() == "[cache]\nthreshold = 0.6\n"
    assert proposals.get(db.connect(), made.id).status == "applied"


def test_a_learn_run_records_its_episodes_and_its_proposals(aicache_home: Path) -> None:
    conn = db.connect()
    run = proposals.start_run(conn, "aicache learn", [7, 5, 6])
    made = propose(settings_repo.default_repo(), run_id=run, conn=conn)
    proposals.finish_run(conn, run, {"proposals": 1, "episodes": 3})
    with pytest.raises(UsageError, match="free text"):
        proposals.finish_run(conn, run, {"best": "how do I undo a commit"})
    row = conn.execute("SELECT * FROM learn_runs").fetchone()
    assert (row["id"], json.loads(row["episode_ids"]), row["dry_run"]) == (run, [5, 6, 7], 0)
    assert json.loads(row["summary"]) == {"episodes": 3, "proposals": 1} and row["finished"] >= row["started"]
    assert made.run_id == run and conn.execute("SELECT COUNT(*) FROM learn_runs").fetchone()[0] == 1


def test_a_branch_name_git_cannot_create_is_a_clear_error(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user")
    git(user, "branch", "aicache")  # refs/heads/aicache is a file, so refs/heads/aicache/learn/... cannot exist
    before = checkout_state(user)
    with pytest.raises(ProposalError, match=r"cannot create branch aicache/learn/.*'refs/heads/aicache' exists"):
        propose(settings_repo.project_repo(user))
    assert checkout_state(user) == before
    assert db.connect().execute("SELECT COUNT(*) FROM proposals").fetchone()[0] == 0


def test_git_processes_see_the_hook_guard_and_none_of_the_callers_git_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook of the user's repository that git runs for our update-ref shows the environment aicache gave git."""
    user = make_repo(tmp_path / "user")
    seen = tmp_path / "seen-env"
    hook = user / ".git" / "hooks" / "reference-transaction"
    hook.write_text(f'#!/bin/sh\nenv | grep -E "^(GIT_|AICACHE_IN_HOOK)" | sort >> "{seen}"\ncat >/dev/null\n')
    hook.chmod(0o755)
    monkeypatch.setenv("GIT_INDEX_FILE", str(user / ".git" / "index"))
    monkeypatch.setenv("GIT_DIR", str(user / ".git"))

    propose(settings_repo.project_repo(user))
    names = {line.split("=", 1)[0] for line in seen.read_text().splitlines()}
    assert "AICACHE_IN_HOOK" in names  # aicache's own hooks would do nothing
    assert "GIT_INDEX_FILE" not in names  # the caller's index is named to no git process


def test_a_proposal_whose_repository_was_deleted_fails_in_one_line(tmp_path: Path, aicache_home: Path) -> None:
    import shutil

    user = make_repo(tmp_path / "user")
    made = propose(settings_repo.project_repo(user))
    shutil.rmtree(user)
    result = cli(aicache_home, "apply", str(made.id))
    assert result.returncode == ExitCode.PROPOSAL and result.stderr.count("\n") == 1
    assert "is not a git repository" in result.stderr
    rejected = cli(aicache_home, "reject", str(made.id), "--why", "project gone")
    assert rejected.returncode == 0 and "already gone" in rejected.stderr
