"""The hooks at work inside ``git commit``: suggest a message, then record how much of it was kept."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aicache import config
from aicache.config import Settings
from aicache.errors import AicacheError, ProviderError, UsageError
from aicache.hooks import STATE_NAME
from aicache.hooks.git import LOCAL_GIT_ENV, git_out, run_git
from aicache.hooks.install import HOOK_NAMES

if TYPE_CHECKING:
    from aicache.memory import Outcome

NoteSink = Callable[[str], None]
T = TypeVar("T")

QUESTION = "Write a commit message for this staged diff."
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_DIFF_BYTES = 32_000
DEFAULT_TEMPLATE = "commit-message"
# The ask's own timeouts end this long before the hook gives up: a silent or slow provider then fails inside the
# worker, which records the error episode. A worker still running at hook.timeout records nothing (the process
# exits): only a stalled store could keep it that long now.
ASK_MARGIN = 0.5


class HookTimeout(AicacheError):
    """The hook's work did not finish within ``hook.timeout``."""


# -- running inside git -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HookRun:
    """What one hook run did: ``done`` is "suggested", "recorded", "skipped" or "failed"."""

    hook: str
    done: str
    detail: str
    seconds: float
    episode_id: int | None = None
    worker_alive: bool = False  # a timed-out worker is still running: the process must exit without it


@dataclass(frozen=True)
class _Repo:
    root: Path
    git_dir: Path  # per worktree: where git keeps COMMIT_EDITMSG, and we the pending suggestion
    comment: str

    @property
    def state_file(self) -> Path:
        return self.git_dir / STATE_NAME


def _repo(env: Mapping[str, str], with_comment: bool = True) -> _Repo:
    cwd = Path.cwd()
    root, git_dir = git_out(["rev-parse", "--show-toplevel", "--absolute-git-dir"], cwd, env).split("\n")
    comment = "#"
    if with_comment:
        value = run_git(["config", "--get", "core.commentChar"], cwd, env).stdout.rstrip("\n")
        comment = value if value and value != "auto" else "#"  # "auto" picks "#" for a message with no text
    return _Repo(Path(root), Path(git_dir), comment)


def within(seconds: float, work: Callable[[], T], timeout_message: str) -> T:
    """Run ``work`` in a daemon thread; raise ``HookTimeout`` if it is still running after ``seconds``."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            failure.append(exc)

    worker = threading.Thread(target=target, name="aicache-hook", daemon=True)
    worker.start()
    worker.join(max(seconds, 0.0))
    if worker.is_alive():
        raise HookTimeout(timeout_message)
    if failure:
        raise failure[0]
    return result[0]


def _timeout(settings: Settings) -> float:
    value = settings.get("hook.timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise UsageError(f"hook.timeout must be a positive number of seconds, not {value!r}")
    return float(value)


def _hook_settings(settings: Settings, seconds_left: float) -> Settings:
    """The settings for the hook's ask: no semantic tier, HTTP timeouts within the time that is left."""
    data = dict(settings.data)
    data["cache"] = {**data.get("cache", {}), "semantic": False}
    # A provider that trickles bytes, or retries, would outlast every per-read timeout: the whole ask ends in time.
    http = settings.http.within(max(seconds_left, 0.1))
    # one retry at most: a commit is waiting, and a failed attempt should end as a recorded error, not a timeout
    data["http"] = asdict(replace(http, retries=min(http.retries, 1)))
    return Settings(data)


@dataclass(frozen=True)
class _Suggestion:
    text: str
    episode_id: int | None  # None when the store could not record it: no feedback can be recorded either
    outcome: Outcome
    warnings: tuple[str, ...]


def clean_suggestion(answer: str) -> str:
    """The model's answer as a message: surrounding whitespace and a wrapping code fence removed."""
    text = answer.strip()
    lines = text.splitlines()
    if len(lines) >= 2 and lines[0].startswith("```") and lines[-1].strip() == "```":
        text = "\n".join(lines[1:-1]).strip()
    return text


def _suggest(
    repo: _Repo, git_env: Mapping[str, str], settings: Settings, deadline: float, timed_out: str
) -> _Suggestion:
    from aicache import db
    from aicache.api import ask
    from aicache.hooks import diffs

    limit = int(settings.get("hook.max_diff_bytes", DEFAULT_MAX_DIFF_BYTES))
    diff = diffs.staged_diff(repo.root, git_env, diffs.load_rules(repo.root), limit)
    if not diff.text:
        why = "every staged file is left out (binary, lock or ignored)" if diff.files else "nothing is staged"
        raise AicacheError(why)
    scrub_process_env()  # from here on, nothing aicache runs may act on the user's repository or index
    ask_deadline = deadline - ASK_MARGIN
    hook_settings = _hook_settings(settings, ask_deadline - time.monotonic())
    conn = db.connect()
    try:
        # The library's entry point, as the ask command: redaction, key, partition and episode are the same.
        result = ask(
            QUESTION,
            input_text=diff.text.encode("utf-8", "surrogateescape"),
            template=str(settings.get("hook.template", DEFAULT_TEMPLATE)),
            model=settings.get("hook.model"),
            provider=settings.get("hook.provider"),
            stream=False,
            settings=hook_settings,
            conn=conn,
            source="hook",
            cwd=repo.root,
        )
    except ProviderError as exc:
        if time.monotonic() < ask_deadline:
            raise
        # the flow has recorded the error episode; the comment line names the setting that ran out
        raise AicacheError(timed_out) from exc
    finally:
        conn.close()
    text = clean_suggestion(result.answer)
    if not text:
        raise AicacheError("the model returned an empty message")
    return _Suggestion(text, result.episode_id, result.outcome, result.warnings)


def scrub_process_env() -> None:
    """Drop git's repository-local variables from this process: what aicache starts must not inherit them."""
    for name in LOCAL_GIT_ENV:
        os.environ.pop(name, None)


def _has_message(original: bytes, comment: str) -> bool:
    scissors = f"{comment} ------------------------ >8 ------------------------"
    for line in original.decode("utf-8", "replace").splitlines():
        if line == scissors:
            break
        if line.strip() and not line.startswith(comment):
            return True
    return False


def _write_suggestion(message_file: Path, original: bytes, text: str) -> None:
    # git's own layout starts with an empty line for the message, then its comments: the suggestion takes it
    separator = b"" if original.startswith(b"\n") or not original else b"\n"
    message_file.write_bytes(text.rstrip("\n").encode("utf-8") + b"\n" + separator + original)


def _write_comment(message_file: Path, original: bytes, comment_line: str) -> None:
    # keep git's empty first line for the user to type on; the reason joins git's comment lines below it
    rest = original[1:] if original.startswith(b"\n") else original
    message_file.write_bytes(b"\n" + comment_line.encode("utf-8") + b"\n" + rest)


def _prepare_commit_msg(args: list[str], on_note: NoteSink, started: float) -> HookRun:
    name = "prepare-commit-msg"
    if not args:
        raise UsageError("prepare-commit-msg: git passes the message file as the first argument")
    if len(args) > 1 and args[1]:
        return HookRun(name, "skipped", f"the commit has a message source ({args[1]})", 0.0)
    message_file = Path(args[0])
    original = message_file.read_bytes()  # unreadable: nothing can be written; run_hook reports it
    git_env = dict(os.environ)  # git's own variables name the commit being made: the diff is read with them
    comment = "#"
    try:
        repo = _repo(git_env)
        comment = repo.comment
        with contextlib.suppress(FileNotFoundError):
            repo.state_file.unlink()  # a suggestion from an earlier commit that never finished
        if _has_message(original, repo.comment):
            raise AicacheError("the message already has text (from an earlier hook); left as it is")
        settings = config.load()
        timeout = _timeout(settings)
        timed_out = f"no answer within {timeout:g} s (hook.timeout)"
        found = within(
            started + timeout - time.monotonic(),
            lambda: _suggest(repo, git_env, settings, started + timeout, timed_out),
            timed_out,
        )
    except Exception as exc:  # the hook's edge: any failure becomes a comment line, never a blocked commit
        reason = describe(exc)
        _write_comment(message_file, original, f"{comment} aicache: no commit message suggested: {reason}")
        on_note(f"no commit message suggested: {reason}")
        return HookRun(name, "failed", reason, time.monotonic() - started, worker_alive=isinstance(exc, HookTimeout))
    for warning in found.warnings:
        on_note(warning)
    _write_suggestion(message_file, original, found.text)
    if found.episode_id is not None:
        state = {"episode_id": found.episode_id, "suggestion": found.text, "ts": time.time()}
        repo.state_file.write_text(json.dumps(state), encoding="utf-8")
    return HookRun(name, "suggested", found.outcome, time.monotonic() - started, found.episode_id)


def kept_similarity(suggested: str, committed: str) -> float:
    """How much of the suggestion the committed message kept: 1.0 unchanged, 0.0 nothing in common."""
    import difflib

    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip().splitlines())[:10_000]

    return round(difflib.SequenceMatcher(None, norm(suggested), norm(committed), autojunk=False).ratio(), 3)


def _record_feedback(episode_id: int, feedback: dict[str, Any]) -> bool:
    from aicache import db

    conn = db.connect()
    try:
        with db.write_transaction(conn):
            cursor = conn.execute(
                "UPDATE episodes SET hook_feedback = ? WHERE id = ?", (json.dumps(feedback), episode_id)
            )
        return cursor.rowcount == 1
    finally:
        conn.close()


def _post_commit(args: list[str], started: float) -> HookRun:
    """``args``: the pending-suggestion file and the commit, as the script claimed them; by default the
    repository's pending suggestion and HEAD (``aicache hook run post-commit`` by hand)."""
    name = "post-commit"
    git_env = dict(os.environ)
    pending = Path(args[0]) if args else _repo(git_env, with_comment=False).state_file
    commit = args[1] if len(args) > 1 else "HEAD"
    try:
        state = json.loads(pending.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return HookRun(name, "skipped", "no suggestion was made for this commit", 0.0)
    finally:
        with contextlib.suppress(FileNotFoundError):
            pending.unlink()  # one suggestion, one commit: never compared twice
    log = git_out(["log", "-1", "--format=%H%n%B", commit, "--"], Path.cwd(), git_env)
    sha, _, message = log.partition("\n")
    scrub_process_env()
    timeout = _timeout(config.load())
    feedback = {"kept_similarity": kept_similarity(str(state["suggestion"]), message), "commit": sha}
    episode_id = int(state["episode_id"])
    recorded = within(
        started + timeout - time.monotonic(),
        lambda: _record_feedback(episode_id, feedback),
        f"the feedback was not recorded within {timeout:g} s (hook.timeout)",
    )
    if not recorded:
        raise AicacheError(f"episode {episode_id} of the suggestion is gone (forgotten?)")
    return HookRun(name, "recorded", json.dumps(feedback), time.monotonic() - started, episode_id)


def describe(exc: BaseException) -> str:
    """One line for a failure: our own errors say what happened; anything else names its type."""
    if isinstance(exc, AicacheError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return f"unexpected {type(exc).__name__}: {exc}"


def run_hook(hook: str, args: list[str], on_note: NoteSink) -> HookRun:
    """Run hook ``hook`` with git's ``args``. Never raises: a failure is reported through ``on_note``."""
    started = time.monotonic()
    try:
        if hook == "prepare-commit-msg":
            return _prepare_commit_msg(args, on_note, started)
        if hook == "post-commit":
            return _post_commit(args, started)
        raise UsageError(f"unknown hook {hook!r}; aicache runs {' and '.join(HOOK_NAMES)}")
    except Exception as exc:  # the hook's edge: whatever went wrong, git must carry on
        if os.environ.get("AICACHE_DEBUG") == "1":
            import traceback

            on_note(traceback.format_exc().rstrip())
        on_note(f"{hook}: {describe(exc)}")
        return HookRun(
            hook, "failed", describe(exc), time.monotonic() - started, worker_alive=isinstance(exc, HookTimeout)
        )


def detach_from_terminal() -> None:
    """Leave the terminal's session, so nothing this process starts can open /dev/tty and prompt."""
    if hasattr(os, "setsid"):
        # EPERM only when already a process-group leader; stdin is /dev/null then, which still stops prompts
        with contextlib.suppress(PermissionError):
            os.setsid()


def finish(run: HookRun) -> None:
    """End a hook process: exit 0 at once when a timed-out worker is still running (it must not hold git)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if run.worker_alive:
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Process entry point of the installed scripts: ``python -c <ENTRY> ROOT HOOK ARGS...``.

    Like ``__main__``, an edge rather than library code; it lives here and not in ``aicache.cli`` because that
    package imports Typer, which costs more than the rest of a cache hit.
    """
    from aicache import output

    args = sys.argv[1:] if argv is None else argv
    detach_from_terminal()
    finish(run_hook(args[0] if args else "", args[1:], output.warn))
