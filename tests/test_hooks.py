"""Git hooks, end to end: real repositories in tmp_path, real ``git commit``, the local test server as provider.

Every git process gets its own HOME and no system config, so nothing here reads or writes the user's git
configuration. The editor is a small script (``GIT_EDITOR``) that saves what git showed it and, when told to,
types a message or edits the suggestion, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aicache.hooks import STATE_NAME, diffs, install, run
from aicache.hooks.git import LOCAL_GIT_ENV
from tests.conftest import AICACHE, cli_env
from tests.fakellm import FakeLLM, Reply

EDITOR = """\
import os, shutil, sys
path = sys.argv[1]
shutil.copy(path, os.environ["EDITOR_SAW"])
action = os.environ.get("EDITOR_ACTION", "keep")
text = open(path, encoding="utf-8").read()
if action.startswith("type:"):
    text = action[5:] + "\\n" + text
elif action.startswith("edit:"):
    old, new = action[5:].split("=>")
    text = text.replace(old, new, 1)
open(path, "w", encoding="utf-8").write(text)
"""


class Git:
    """A sandbox: an environment for git and aicache processes, and helpers to run them."""

    def __init__(self, tmp: Path, home: Path, server: FakeLLM) -> None:
        self.tmp = tmp
        self.home = home
        self.server = server
        user_home = tmp / "user-home"
        user_home.mkdir()
        editor = tmp / "editor.py"
        editor.write_text(EDITOR)
        self.saw = tmp / "editor-saw.txt"
        env = {k: v for k, v in cli_env(home).items() if not k.startswith("GIT_")}
        env.update(
            HOME=str(user_home),
            XDG_CONFIG_HOME=str(user_home / ".config"),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="Ada",
            GIT_AUTHOR_EMAIL="ada@example.com",
            GIT_COMMITTER_NAME="Ada",
            GIT_COMMITTER_EMAIL="ada@example.com",
            GIT_EDITOR=f"{sys.executable} {editor}",
            EDITOR_SAW=str(self.saw),
            OPENAI_API_KEY="sk-test-hooks-0000000000000000",
            OPENAI_BASE_URL=server.openai_url,
        )
        self.env = env
        self.config()

    def config(self, extra: str = "", timeout: float = 5.0, top: str = "") -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            top + "[cache]\nsemantic = false\n"
            f"[hook]\ntimeout = {timeout}\n"
            "[providers.openai]\nsend_key_to_custom_base_url = true\n" + extra
        )

    def run(self, cwd: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(args), cwd=cwd, env={**self.env, **env}, capture_output=True, text=True, timeout=120, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def git(self, cwd: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run(cwd, "git", *args, check=check, **env)

    def aicache(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(cwd, *AICACHE, *args, check=check)

    def repo(self, name: str = "repo", install: bool = True) -> Path:
        path = self.tmp / name
        self.git(self.tmp, "init", "-q", "-b", "main", str(path))
        (path / "README.md").write_text("# demo\n")
        self.git(path, "add", "README.md")
        self.git(path, "commit", "-q", "-m", "Initial commit")
        if install:
            self.aicache(path, "hook", "install")
        return path

    def commit(self, repo: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        return self.git(repo, "commit", *args, check=check, **env)

    def message(self, repo: Path, rev: str = "HEAD") -> str:
        return self.git(repo, "log", "-1", "--format=%B", rev).stdout.strip()

    def episodes(self) -> list[dict[str, Any]]:
        db = self.home / "data" / "aicache.db"
        if not db.exists():
            return []
        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM episodes ORDER BY id")]

    def feedback(self, episode_id: int, wait: float = 60.0) -> dict[str, Any]:
        """post-commit records in the background: wait for it."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            found = [e for e in self.episodes() if e["id"] == episode_id and e["hook_feedback"]]
            if found:
                return dict(json.loads(found[0]["hook_feedback"]))
            time.sleep(0.05)
        raise AssertionError(f"no feedback recorded on episode {episode_id}")

    def wait_for_post_commit(self, repo: Path, wait: float = 60.0) -> None:
        """Until no background post-commit of ``repo`` runs: the hook starts it before ``git commit`` returns."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _post_commits_in(repo):
                return
            time.sleep(0.05)
        raise AssertionError(f"a post-commit of {repo} still runs after {wait:g} s")


def _post_commits_in(repo: Path) -> list[int]:
    """Processes running aicache's post-commit with ``repo`` as their working directory (git runs hooks there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # the process may have exited since the listing
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if b"post-commit" in argv and Path(os.readlink(entry / "cwd")) == repo.resolve():
                    found.append(int(entry.name))
    return found


@pytest.fixture
def sandbox(tmp_path: Path, aicache_home: Path, fake_llm: FakeLLM) -> Git:
    return Git(tmp_path, aicache_home, fake_llm)


def user_text(server: FakeLLM, index: int = -1) -> str:
    messages = server.requests[index].body["messages"]
    return str([m for m in messages if m["role"] == "user"][-1]["content"])


def stage(repo: Path, sandbox: Git, name: str, text: str | bytes) -> None:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    sandbox.git(repo, "add", name)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- install, status, uninstall -----------------------------------------------------------------------------


def test_install_status_uninstall(sandbox: Git) -> None:
    repo = sandbox.repo(install=False)
    hooks_dir = repo / ".git" / "hooks"
    assert "not installed" in sandbox.aicache(repo, "hook", "status").stdout
    installed = sandbox.aicache(repo, "hook", "install")
    assert "installed prepare-commit-msg" in installed.stderr and "installed post-commit" in installed.stderr
    for name in install.HOOK_NAMES:
        assert (hooks_dir / name).stat().st_mode & stat.S_IXUSR
    shown = sandbox.aicache(repo, "hook", "status").stdout
    assert f"hooks directory: {hooks_dir}" in shown
    assert "prepare-commit-msg: installed" in shown and "post-commit: installed" in shown
    data = json.loads(sandbox.aicache(repo, "hook", "status", "--json").stdout)
    assert [h["installed"] for h in data["hooks"]["hooks"]] == [True, True]
    assert "updated prepare-commit-msg" in sandbox.aicache(repo, "hook", "install").stderr  # idempotent
    sandbox.aicache(repo, "hook", "uninstall")
    assert not any((hooks_dir / n).exists() for n in (*install.HOOK_NAMES, install.MANIFEST_NAME))
    outside = sandbox.aicache(sandbox.tmp, "hook", "install", check=False)
    assert outside.returncode == 2 and "not inside a git repository" in outside.stderr


# -- the suggestion -----------------------------------------------------------------------------------------


def test_suggestion_then_cache_hit_then_miss_on_another_diff(sandbox: Git) -> None:
    repo = sandbox.repo()
    server = sandbox.server
    stage(repo, sandbox, "greet.py", "print('hello')\n")
    server.enqueue(Reply.text("Add a greeting script"))
    sandbox.commit(repo)
    assert sandbox.message(repo) == "Add a greeting script"
    saw = sandbox.saw.read_text()
    assert saw.startswith("Add a greeting script\n\n# Please enter the commit message")
    assert len(server.requests) == 1
    assert run.QUESTION in user_text(server) and "+print('hello')" in user_text(server)
    first = sandbox.episodes()[-1]
    assert (first["outcome"], first["source"], first["template"]) == ("miss", "hook", "commit-message")
    head = sandbox.git(repo, "rev-parse", "HEAD").stdout.strip()
    assert sandbox.feedback(first["id"]) == {"kept_similarity": 1.0, "commit": head}

    sandbox.git(repo, "reset", "-q", "--soft", "HEAD~1")  # the same staged diff again
    sandbox.commit(repo)
    assert sandbox.message(repo) == "Add a greeting script"
    assert len(server.requests) == 1
    assert sandbox.episodes()[-1]["outcome"] == "exact_hit"

    stage(repo, sandbox, "greet.py", "print('hello, world')\n")
    server.enqueue(Reply.text("Greet the whole world"))
    sandbox.commit(repo)
    assert sandbox.message(repo) == "Greet the whole world"
    assert len(server.requests) == 2 and "+print('hello, world')" in user_text(server)


def test_feedback_on_a_suggestion_keeps_what_the_hook_recorded(sandbox: Git) -> None:
    repo = sandbox.repo()
    stage(repo, sandbox, "greet.py", "print('hello')\n")
    sandbox.server.enqueue(Reply.text("Add a greeting script"))
    sandbox.commit(repo)
    episode = sandbox.episodes()[-1]["id"]
    head = sandbox.git(repo, "rev-parse", "HEAD").stdout.strip()
    kept = {"kept_similarity": 1.0, "commit": head}
    assert sandbox.feedback(episode) == kept
    assert sandbox.aicache(repo, "feedback", str(episode), "good").returncode == 0
    shown = json.loads(sandbox.aicache(repo, "show", str(episode), "--json").stdout)["episode"]
    assert (shown["feedback"], shown["hook_feedback"]) == ("good", kept)  # both, each in one shape
    (logged,) = json.loads(sandbox.aicache(repo, "log", "--json").stdout)["episodes"]
    assert (logged["feedback"], logged["hook_feedback"]) == ("good", kept)
    text = sandbox.aicache(repo, "show", str(episode)).stdout
    assert "feedback: good" in text and f"commit hook: kept 100% of the suggestion in commit {head}" in text


def test_an_edited_suggestion_is_scored(sandbox: Git) -> None:
    repo = sandbox.repo()
    stage(repo, sandbox, "notes.txt", "remember the milk\n")
    sandbox.server.enqueue(Reply.text("Add shopping notes"))
    sandbox.commit(repo, EDITOR_ACTION="edit:Add shopping notes=>Add grocery notes")
    assert sandbox.message(repo) == "Add grocery notes"
    feedback = sandbox.feedback(sandbox.episodes()[-1]["id"])
    assert 0.5 < feedback["kept_similarity"] < 1.0


def test_message_sources_are_left_alone(sandbox: Git) -> None:
    repo = sandbox.repo()
    stage(repo, sandbox, "a.txt", "a\n")
    sandbox.commit(repo, "-m", "Typed with -m")
    assert sandbox.message(repo) == "Typed with -m"
    stage(repo, sandbox, "b.txt", "b\n")
    (sandbox.tmp / "msg.txt").write_text("From a file\n")
    sandbox.commit(repo, "-F", str(sandbox.tmp / "msg.txt"))
    assert sandbox.message(repo) == "From a file"
    sandbox.commit(repo, "--amend")
    assert sandbox.message(repo) == "From a file"
    sandbox.git(repo, "checkout", "-q", "-b", "topic")
    stage(repo, sandbox, "c.txt", "c\n")
    sandbox.commit(repo, "-m", "Topic work")
    sandbox.git(repo, "checkout", "-q", "main")
    sandbox.git(repo, "merge", "-q", "--no-ff", "--no-edit", "topic")
    assert sandbox.message(repo).startswith("Merge branch 'topic'")
    assert sandbox.server.requests == [] and sandbox.episodes() == []
    assert not (repo / ".git" / STATE_NAME).exists()


def test_left_out_files_and_secrets(sandbox: Git) -> None:
    repo = sandbox.repo()
    (repo / ".aicacheignore").write_text("# generated\nvendor/\n")
    stage(repo, sandbox, "package-lock.json", '{"lockfileVersion": 3, "marker": "LOCKMARKER"}\n')
    stage(repo, sandbox, "logo.png", b"\x89PNG\r\n\x1a\n\x00\x00BINMARKER\x00")
    stage(repo, sandbox, "vendor/lib.js", "var VENDORMARKER = 1;\n")
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
    stage(repo, sandbox, "settings.py", f'API_KEY = "{key}"\nDEBUG = False\n')
    sandbox.commit(repo)
    sent = sandbox.server.requests[-1].raw.decode()
    for marker in ("LOCKMARKER", "BINMARKER", "VENDORMARKER", key):
        assert marker not in sent
    text = user_text(sandbox.server)
    assert "+DEBUG = False" in text and "[REDACTED:openai-key]" in text
    assert "package-lock.json (lock file" in text and "logo.png (binary" in text
    assert "vendor/lib.js (in .aicacheignore" in text


# -- failures never block a commit -------------------------------------------------------------------------


def test_provider_down_the_commit_goes_through_with_a_comment(sandbox: Git) -> None:
    sandbox.config(timeout=3)
    repo = sandbox.repo()
    stage(repo, sandbox, "a.txt", "a\n")
    done = sandbox.commit(
        repo, EDITOR_ACTION="type:Typed by hand", OPENAI_BASE_URL=f"http://127.0.0.1:{closed_port()}/v1"
    )
    assert sandbox.message(repo) == "Typed by hand"
    assert "\n# aicache: no commit message suggested: " in sandbox.saw.read_text()
    assert "no commit message suggested" in done.stderr
    assert sandbox.episodes()[-1]["outcome"] == "error"


def test_provider_slow_the_hook_gives_up_in_time(sandbox: Git) -> None:
    sandbox.config(timeout=2)
    repo = sandbox.repo()
    stage(repo, sandbox, "a.txt", "a\n")
    # The server would stay silent far longer than the pytest timeout: the commit returns only if the hook gave up.
    sandbox.server.enqueue(Reply.hang(3600))
    sandbox.commit(repo, EDITOR_ACTION="type:Typed while waiting")
    assert sandbox.message(repo) == "Typed while waiting"
    comment = [line for line in sandbox.saw.read_text().splitlines() if line.startswith("# aicache:")]
    assert len(comment) == 1 and "no commit message suggested" in comment[0]
    assert "no answer within 2 s (hook.timeout)" in comment[0]
    # The ask's own timeout ends before the hook gives up, so the ask is in `aicache log` like any other.
    [episode] = sandbox.episodes()
    assert episode["outcome"] == "error" and episode["source"] == "hook"
    assert "sent no response" in episode["error"] and "(read timeout)" in episode["error"]
    sandbox.git(repo, "reset", "-q", "--soft", "HEAD~1")  # nothing was cached: the same diff asks again
    sandbox.server.enqueue(Reply.text("Add a"))
    sandbox.commit(repo)
    assert sandbox.message(repo) == "Add a" and len(sandbox.server.requests) == 2


def test_provider_trickling_the_hook_records_the_ask_before_giving_up(sandbox: Git) -> None:
    sandbox.config(timeout=2)
    repo = sandbox.repo()
    stage(repo, sandbox, "a.txt", "a\n")
    # A byte every 50 ms for minutes: no read timeout fires, so only the ask's total timeout can end it in time.
    sandbox.server.enqueue(Reply.trickle("x" * 5000, interval=0.05))
    sandbox.commit(repo, EDITOR_ACTION="type:Typed while waiting")
    assert sandbox.message(repo) == "Typed while waiting"
    comment = [line for line in sandbox.saw.read_text().splitlines() if line.startswith("# aicache:")]
    assert len(comment) == 1 and "no commit message suggested" in comment[0]
    [episode] = sandbox.episodes()
    assert episode["outcome"] == "error" and episode["source"] == "hook"
    assert "(http.total_timeout)" in episode["error"]


# -- chaining and where hooks live --------------------------------------------------------------------------


def test_existing_hooks_are_chained_and_restored_byte_for_byte(sandbox: Git) -> None:
    repo = sandbox.repo(install=False)
    hooks_dir = repo / ".git" / "hooks"
    log = sandbox.tmp / "earlier.log"
    originals = {}
    for name, mode in (("prepare-commit-msg", 0o750), ("post-commit", 0o700)):
        path = hooks_dir / name
        # not UTF-8, no final newline: restored means these exact bytes
        path.write_bytes(b"#!/bin/sh\n# mine \xff\xfe\n" + f'echo "{name} $2" >> "{log}"'.encode())
        path.chmod(mode)
        os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
        info = path.stat()
        originals[name] = (path.read_bytes(), info.st_mode, info.st_mtime_ns, info.st_ino)
    installed = sandbox.aicache(repo, "hook", "install")
    assert "prepare-commit-msg.aicache-chained and runs first" in installed.stderr
    assert "runs your earlier hook first" in sandbox.aicache(repo, "hook", "status").stdout

    stage(repo, sandbox, "a.txt", "a\n")
    sandbox.server.enqueue(Reply.text("Add a"))
    sandbox.commit(repo)
    assert sandbox.message(repo) == "Add a"
    deadline = time.monotonic() + 60
    while "post-commit" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().splitlines() == ["prepare-commit-msg ", "post-commit "]

    removed = sandbox.aicache(repo, "hook", "uninstall")
    assert "restored your earlier prepare-commit-msg byte for byte" in removed.stderr
    for name, (data, mode, mtime, inode) in originals.items():
        info = (hooks_dir / name).stat()
        assert ((hooks_dir / name).read_bytes(), info.st_mode, info.st_mtime_ns, info.st_ino) == (
            data,
            mode,
            mtime,
            inode,
        )
    assert sorted(p.name for p in hooks_dir.iterdir() if "aicache" in p.name) == []


def test_a_failing_earlier_hook_still_stops_the_commit(sandbox: Git) -> None:
    repo = sandbox.repo(install=False)
    earlier = repo / ".git" / "hooks" / "prepare-commit-msg"
    earlier.write_text("#!/bin/sh\necho 'policy says no' >&2\nexit 3\n")
    earlier.chmod(0o755)
    sandbox.aicache(repo, "hook", "install")
    stage(repo, sandbox, "a.txt", "a\n")
    refused = sandbox.commit(repo, check=False)
    assert refused.returncode != 0 and "policy says no" in refused.stderr
    assert sandbox.server.requests == []


def test_a_hook_replaced_after_install_is_left_alone(sandbox: Git) -> None:
    repo = sandbox.repo()
    theirs = repo / ".git" / "hooks" / "post-commit"
    theirs.write_text("#!/bin/sh\nexit 0\n")
    removed = sandbox.aicache(repo, "hook", "uninstall")
    assert "post-commit is no longer aicache's script, so it was left as it is" in removed.stderr
    assert theirs.read_text() == "#!/bin/sh\nexit 0\n"
    assert not (repo / ".git" / "hooks" / "prepare-commit-msg").exists()


def test_core_hooks_path_is_honoured(sandbox: Git) -> None:
    repo = sandbox.repo(install=False)
    sandbox.git(repo, "config", "core.hooksPath", ".githooks")
    sandbox.aicache(repo, "hook", "install")
    assert (repo / ".githooks" / "prepare-commit-msg").is_file()
    assert not (repo / ".git" / "hooks" / "prepare-commit-msg").exists()
    shown = sandbox.aicache(repo, "hook", "status").stdout
    assert f"hooks directory: {repo / '.githooks'}" in shown and "core.hooksPath: local: .githooks" in shown
    stage(repo, sandbox, "a.txt", "a\n")
    sandbox.server.enqueue(Reply.text("Add a"))
    sandbox.commit(repo)
    assert sandbox.message(repo) == "Add a"


def test_linked_worktrees_share_the_hooks(sandbox: Git) -> None:
    repo = sandbox.repo()
    worktree = sandbox.tmp / "wt"
    sandbox.git(repo, "worktree", "add", "-q", "-b", "side", str(worktree))
    shown = sandbox.aicache(worktree, "hook", "status").stdout
    assert f"hooks directory: {repo / '.git' / 'hooks'}" in shown and "prepare-commit-msg: installed" in shown
    stage(repo, sandbox, "a.txt", "a\n")
    stage(worktree, sandbox, "b.txt", "b\n")
    sandbox.server.enqueue(Reply.text("Add b on the side"))
    sandbox.commit(worktree)
    assert sandbox.message(worktree) == "Add b on the side"
    assert "+b" in user_text(sandbox.server) and "a.txt" not in user_text(sandbox.server)
    assert sandbox.git(repo, "diff", "--cached", "--name-only").stdout == "a.txt\n"


def test_global_hooks_directory(sandbox: Git) -> None:
    shared = sandbox.tmp / "global-hooks"
    installed = sandbox.aicache(sandbox.tmp, "hook", "install", "--global", str(shared))
    assert "set the global core.hooksPath" in installed.stderr
    assert sandbox.git(sandbox.tmp, "config", "--global", "core.hooksPath").stdout.strip() == str(shared)
    repo = sandbox.repo(install=False)
    stage(repo, sandbox, "a.txt", "a\n")
    sandbox.server.enqueue(Reply.text("Add a"))
    sandbox.commit(repo)
    assert sandbox.message(repo) == "Add a"
    assert (
        "prepare-commit-msg: installed"
        in sandbox.aicache(sandbox.tmp, "hook", "status", "--global", str(shared)).stdout
    )
    sandbox.aicache(sandbox.tmp, "hook", "uninstall", "--global", str(shared))
    unset = sandbox.git(sandbox.tmp, "config", "--global", "core.hooksPath", check=False)
    assert unset.returncode == 1 and not (shared / "prepare-commit-msg").exists()

    sandbox.git(sandbox.tmp, "config", "--global", "core.hooksPath", str(sandbox.tmp / "elsewhere"))
    refused = sandbox.aicache(sandbox.tmp, "hook", "install", "--global", str(shared), check=False)
    assert refused.returncode == 2 and "already" in refused.stderr and not shared.joinpath("post-commit").exists()


def test_status_inside_a_repository_names_a_global_hooks_directory_global(sandbox: Git) -> None:
    shared = sandbox.tmp / "global-hooks"
    sandbox.aicache(sandbox.tmp, "hook", "install", "--global", str(shared))
    repo = sandbox.repo(install=False)
    shown = sandbox.aicache(repo, "hook", "status").stdout
    assert f"hooks directory: {shared} (global)\n" in shown, shown
    assert "core.hooksPath: global: " in shown and "prepare-commit-msg: installed" in shown
    assert json.loads(sandbox.aicache(repo, "hook", "status", "--json").stdout)["hooks"]["scope"] == "global"
    sandbox.git(repo, "config", "core.hooksPath", ".githooks")  # the repository's own setting wins
    assert f"hooks directory: {repo / '.githooks'} (repository)" in sandbox.aicache(repo, "hook", "status").stdout


def test_hook_alone_shows_its_help_and_exits_0(sandbox: Git) -> None:
    shown = sandbox.aicache(sandbox.tmp, "hook")
    assert "install" in shown.stdout and "status" in shown.stdout and shown.stderr == ""


# -- safety inside git -------------------------------------------------------------------------------------


def test_the_hook_reads_the_commit_being_made_and_never_touches_the_users_index(sandbox: Git) -> None:
    repo = sandbox.repo()
    (repo / "a.txt").write_text("a1\n")
    (repo / "b.txt").write_text("b1\n")
    sandbox.git(repo, "add", "a.txt", "b.txt")
    sandbox.commit(repo, "-m", "Add a and b")
    (repo / "a.txt").write_text("a2\n")
    (repo / "b.txt").write_text("b2\n")
    sandbox.git(repo, "add", "b.txt")  # the user stages b, then commits only a: git uses a temporary index
    sandbox.server.enqueue(Reply.text("Change a"))
    sandbox.commit(repo, "a.txt")
    assert sandbox.message(repo) == "Change a"
    assert "+a2" in user_text(sandbox.server) and "b2" not in user_text(sandbox.server)
    assert sandbox.git(repo, "status", "--porcelain").stdout == "M  b.txt\n"  # b is still staged, unchanged
    assert sandbox.git(repo, "diff", "--cached").stdout.count("+b2") == 1

    (repo / "a.txt").write_text("a3\n")
    sandbox.server.enqueue(Reply.text("Change a and b"))
    sandbox.commit(repo, "-a")  # commit -a: the index being committed is git's locked copy
    assert "+a3" in user_text(sandbox.server) and "+b2" in user_text(sandbox.server)
    assert sandbox.git(repo, "status", "--porcelain").stdout == ""


def test_git_variables_are_scrubbed_and_hooks_never_recurse(sandbox: Git) -> None:
    """The provider is a wrapped CLI that itself commits in another repository with aicache's hooks."""
    other = sandbox.repo("other")
    runs, seen_env = sandbox.tmp / "tool-runs", sandbox.tmp / "tool-env"
    tool = sandbox.tmp / "tool.sh"
    tool.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        f'echo run >> "{runs}"\n'
        f'env | grep -E "^(GIT_|AICACHE_IN_HOOK)" | sort > "{seen_env}"\n'
        f'cd "{other}" && echo nested > nested.txt && git add nested.txt && '
        "GIT_EDITOR=true git commit -q --allow-empty-message >/dev/null 2>&1\n"
        "echo 'Message from the tool'\n"
    )
    sandbox.config(f'[providers.command]\nargv = ["sh", "{tool}"]\n', top='provider = "command"\n')
    repo = sandbox.repo()
    stage(repo, sandbox, "a.txt", "a\n")
    sandbox.commit(repo)
    assert sandbox.message(repo) == "Message from the tool"
    assert runs.read_text() == "run\n"  # the nested commit's hook did not ask aicache again
    env_lines = seen_env.read_text().splitlines()
    assert "AICACHE_IN_HOOK=1" in env_lines
    leaked = [line for line in env_lines if line.split("=", 1)[0] in LOCAL_GIT_ENV]
    assert leaked == []
    assert sandbox.git(other, "log", "-1", "--format=%s").stdout.strip() == ""
    assert sandbox.git(other, "show", "--name-only", "--format=", "HEAD").stdout.split() == ["nested.txt"]
    assert sandbox.git(repo, "status", "--porcelain").stdout == ""
    assert sandbox.git(repo, "show", "--name-only", "--format=", "HEAD").stdout.split() == ["a.txt"]


def test_a_suggestion_is_never_compared_with_another_commit(sandbox: Git) -> None:
    repo = sandbox.repo()
    stage(repo, sandbox, "a.txt", "a\n")
    sandbox.server.enqueue(Reply.text("Add a"))
    aborted = sandbox.commit(repo, check=False, EDITOR_ACTION="edit:Add a=>")  # the user empties the message
    assert aborted.returncode != 0 and (repo / ".git" / STATE_NAME).exists()
    sandbox.commit(repo, "-m", "Typed with -m")
    assert not (repo / ".git" / STATE_NAME).exists()  # a message source drops the pending suggestion
    sandbox.wait_for_post_commit(repo)
    assert [e["feedback"] for e in sandbox.episodes()] == [None]


# -- the diff rules -----------------------------------------------------------------------------------------


def test_ignore_rules_follow_gitignore() -> None:
    rules = diffs.default_rules() + diffs.parse_rules(
        ["vendor/", "/build", "docs/**/*.md", "*.gen.*", "!poetry.lock", "# comment", ""], "in .aicacheignore"
    )
    reason = diffs.ignored_reason
    assert reason("yarn.lock", rules) == "lock file" and reason("web/app/yarn.lock", rules) == "lock file"
    assert reason("poetry.lock", rules) is None  # re-included by the user's "!"
    assert reason("vendor/a/b.js", rules) == "in .aicacheignore" and reason("src/vendor", rules) is None
    assert reason("build/out.txt", rules) == "in .aicacheignore" and reason("src/build/x", rules) is None
    assert reason("docs/a/b/c.md", rules) == "in .aicacheignore" and reason("docs/c.md", rules) is not None
    assert reason("src/x.gen.py", rules) == "in .aicacheignore" and reason("src/gen.py", rules) is None
    assert reason("app.min.js", rules) == "minified or generated" and reason(".env", rules) == "may hold secrets"
    assert reason(".env.example", rules) is None and reason("src/main.py", rules) is None


def test_a_large_diff_is_cut_by_the_documented_rule(sandbox: Git) -> None:
    repo = sandbox.repo(install=False)
    big = "".join(f"line {i}\n" + "same\n" * 10 for i in range(200))
    stage(repo, sandbox, "big.txt", big)
    stage(repo, sandbox, "small.txt", "tiny\n")
    sandbox.commit(repo, "-m", "base")
    stage(repo, sandbox, "big.txt", big.replace("line ", "LINE "))
    stage(repo, sandbox, "small.txt", "tiny change\n")
    stage(repo, sandbox, "yarn.lock", "lock\n")
    env = {**sandbox.env, "PWD": str(repo)}
    whole = diffs.staged_diff(repo, env, diffs.default_rules(), 1_000_000)
    assert not whole.cut and whole.text.endswith("Also changed, diff not shown: yarn.lock (lock file, +1 -0)\n")
    cut = diffs.staged_diff(repo, env, diffs.default_rules(), 4_000)
    assert cut.cut and len(cut.text.encode()) <= 4_000
    assert cut.text.startswith("Staged changes: 3 files; the diff below is cut to fit 4,000 bytes.\n")
    assert "  big.txt (+200 -200)\n" in cut.text and "  yarn.lock (+1 -0, lock file: diff not shown)\n" in cut.text
    assert "+tiny change" in cut.text  # the small file is shown whole, although git lists it after big.txt
    assert "hunks of big.txt left out]" in cut.text and "+LINE 0" in cut.text and "+LINE 199" not in cut.text
    assert cut.text.index("diff --git a/big.txt") < cut.text.index("diff --git a/small.txt")  # git's order
    assert diffs.staged_diff(repo, env, diffs.default_rules(), 4_000) == cut


def test_similarity_and_cleaning() -> None:
    assert run.kept_similarity("Add a\n\nBody text ", "Add a\n\nBody text") == 1.0
    assert run.kept_similarity("Add parser", "Remove everything else entirely") < 0.5
    assert run.clean_suggestion("```\nFix bug\n```\n") == "Fix bug"
