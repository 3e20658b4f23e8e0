"""Proposals: every change ``learn`` wants is one git branch with one commit, for the user to apply or reject.

A proposal is the branch ``aicache/learn/<date>-<slug>`` (``-2``, ``-3``... when the name is taken) holding one
commit on top of the live settings (``main`` of aicache's own repository, or HEAD of the user's project), whose
message carries the evidence: aggregates only, checked by ``check_evidence`` before anything is written.

The commit is made with plumbing, so the user's HEAD, index and working tree are never touched: blobs go
straight into the object database, the tree is built in a temporary index file (``GIT_INDEX_FILE`` in a
temporary directory) from the base commit's tree, ``commit-tree`` makes the commit, and ``update-ref`` creates
the branch only if it does not exist yet (expected old value: zeros), so a lost race fails instead of
overwriting. Nothing is proposed while the repository is in the middle of a rebase, merge, cherry-pick or
revert. The branch and its row in the store are made together: the ref is created inside the store's write
transaction and deleted again if that transaction fails.

Git runs through GitPython (imported only here, never on the ask path) with git's repository-local variables
(``GIT_DIR``, ``GIT_INDEX_FILE``... as a hook exports them) removed from the environment, and with
``AICACHE_IN_HOOK=1`` so that commits aicache makes never start aicache's own hooks. ``preview`` computes the
same diff from plain reads and writes nothing: no object, no ref, no file, no row.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicache import db, files
from aicache.errors import AicacheError, ConfigError, ProposalError, UsageError
from aicache.hooks import GUARD_ENV
from aicache.hooks.git import LOCAL_GIT_ENV
from aicache.learn.settings_repo import DEFAULT, LEARNED_FILE, LIVE_BRANCH, SettingsRepo, parse_learned, repo_at

BRANCH_PREFIX = "aicache/learn/"
ZERO = "0" * 40
PROPOSED, APPLIED, REJECTED, REVERTED = "proposed", "applied", "rejected", "reverted"
#: who commits in aicache's name; the user's own identity may not be configured, and these commits are not theirs
IDENTITY = {
    "GIT_AUTHOR_NAME": "aicache learn",
    "GIT_AUTHOR_EMAIL": "aicache@localhost",
    "GIT_COMMITTER_NAME": "aicache learn",
    "GIT_COMMITTER_EMAIL": "aicache@localhost",
}
#: files in a git directory that say an operation is half-way; proposing on top of it would base on a moving HEAD
#: for aicache's own repository: no hook (a global core.hooksPath) runs there, no commit waits for an editor
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null", "-c", "core.editor=true")
BUSY = {
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase (or git am)",
    "MERGE_HEAD": "a merge",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
}

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,39}\Z")
_FILE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_./~][A-Za-z0-9_.:/@+=~-]{0,79}\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\Z")
_COMMAND = re.compile(r"aicache (?:learn|eval|proposals)(?: [A-Za-z0-9_./~:=@+,-]+){0,24}\Z")
MAX_EVIDENCE_BYTES = 64_000


@dataclass(frozen=True)
class Proposal:
    """One proposal as the store records it."""

    id: int
    run_id: int | None
    repo: str  # the settings folder: aicache's own repository, or a project's .aicache/
    repo_kind: str
    branch: str
    commit: str
    slug: str
    created: float
    status: str
    why: str | None
    evidence: dict[str, Any]
    applied_commit: str | None
    reverted_commit: str | None
    decided: float | None

    @property
    def settings_repo(self) -> SettingsRepo:
        return repo_at(Path(self.repo), self.repo_kind)


@dataclass(frozen=True)
class Detail:
    """``proposals show``: the record, the commit message and the diff of the commit, if its branch still exists."""

    proposal: Proposal
    branch_exists: bool
    message: str
    diff: str


@dataclass(frozen=True)
class Outcome:
    """What ``apply``, ``reject`` or ``revert`` did, one line per action, and the proposal as now recorded."""

    proposal: Proposal
    actions: tuple[str, ...]


# -- checks on what may be written ----------------------------------------------------------------------------


def check_evidence(evidence: Mapping[str, Any]) -> None:
    """Refuse evidence that could hold a question or an answer: ``UsageError`` naming the offending key.

    Allowed: numbers, booleans, null, short identifiers (model names, versions, partition kinds, file names),
    dates, and ``aicache learn|eval|proposals`` command lines; in dicts with identifier keys and in lists.
    Free text is refused: it contains spaces or punctuation no identifier has.
    """
    if not isinstance(evidence, Mapping):
        raise UsageError("evidence must be a mapping of names to aggregates")
    _check_value(evidence, "evidence", 0)
    size = len(json.dumps(evidence, sort_keys=True))
    if size > MAX_EVIDENCE_BYTES:
        raise UsageError(f"evidence is {size} bytes; at most {MAX_EVIDENCE_BYTES} (aggregates only)")


def _check_value(value: Any, where: str, depth: int) -> None:
    if depth > 6:
        raise UsageError(f"evidence {where} is nested too deeply")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"evidence {where} is not a finite number")
        return
    if isinstance(value, str):
        if _IDENTIFIER.match(value) or _DATE.match(value) or _COMMAND.match(value):
            return
        raise UsageError(
            f"evidence {where} is free text; evidence holds numbers, identifiers, dates and aicache commands only"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not _KEY.match(key):
                raise UsageError(f"evidence key {key!r} in {where} is not an identifier")
            _check_value(item, f"{where}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]", depth + 1)
        return
    raise UsageError(f"evidence {where} is a {type(value).__name__}, not a number, identifier or date")


def _check_slug(slug: str) -> None:
    if not _SLUG.match(slug):
        raise UsageError(f"proposal slug {slug!r}: use lower-case letters, digits and dashes (at most 40)")


def _check_files(files: Mapping[str, bytes]) -> None:
    if not files:
        raise UsageError("a proposal needs at least one file")
    for name, data in files.items():
        parts = name.split("/")
        if not all(_FILE_PART.match(part) for part in parts) or ".git" in parts:
            raise UsageError(f"proposal file name {name!r}: a relative path of letters, digits, '_', '.', '-'")
        if not isinstance(data, bytes):
            raise UsageError(f"proposal file {name!r} must be bytes")
        if name == LEARNED_FILE:
            try:
                parse_learned(data, f"proposed {LEARNED_FILE}")
            except ConfigError as exc:
                raise UsageError(str(exc)) from None


def _check_message(message: str) -> None:
    if not message.strip() or "\n" in message or len(message) > 120:
        raise UsageError("a proposal's message is one line of at most 120 characters (the evidence goes apart)")


def commit_message(message: str, slug: str, evidence: Mapping[str, Any]) -> str:
    """The proposal commit's message: the summary line, the evidence as JSON (machine-readable), a trailer."""
    body = json.dumps(evidence, sort_keys=True, indent=2, ensure_ascii=True)
    return f"{message}\n\nEvidence (aggregates only):\n{body}\n\nAicache-Proposal: {slug}\n"


# -- running git ---------------------------------------------------------------------------------------------


@contextmanager
def _git_environment() -> Iterator[None]:
    """Run git without the repository-local variables a hook may have exported, and with the hook guard set.

    GitPython hands every git process a copy of ``os.environ`` and offers no way to unset a variable for one
    call, so they are removed from this process's environment for the duration and put back afterwards.
    """
    saved = {
        name: os.environ[name] for name in (*LOCAL_GIT_ENV, GUARD_ENV, "GIT_TERMINAL_PROMPT") if name in os.environ
    }
    for name in LOCAL_GIT_ENV:
        os.environ.pop(name, None)
    os.environ[GUARD_ENV] = "1"
    os.environ["GIT_TERMINAL_PROMPT"] = "0"
    try:
        yield
    finally:
        for name in (*LOCAL_GIT_ENV, GUARD_ENV, "GIT_TERMINAL_PROMPT"):
            os.environ.pop(name, None)
        os.environ.update(saved)


class _Git:
    """One repository, driven through GitPython's command runner and object database."""

    def __init__(self, root: Path, own: bool) -> None:
        # aicache's own repository runs no hooks at all: nothing there is the user's to check or veto
        self.config = _NO_HOOKS if own else ()
        try:
            import git
        except ImportError as exc:  # GitPython raises ImportError when no git executable works
            raise AicacheError(f"git is not usable: {exc}") from None
        try:
            self.repo = git.Repo(root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise ProposalError(f"{root} is not a git repository (any more)") from None

    def close(self) -> None:
        self.repo.close()

    def run(self, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> tuple[int, str, str]:
        # GIT_OPTIONAL_LOCKS=0: read-only commands such as status must not refresh and rewrite the index.
        status, out, err = self.repo.git.execute(
            ["git", *self.config, *args],
            env={"GIT_OPTIONAL_LOCKS": "0", **(env or {})},
            with_extended_output=True,
            with_exceptions=False,
        )
        if check and status != 0:
            lines = str(err).strip().splitlines()
            raise ProposalError(f"git {args[0]} failed in {self.repo.working_dir}: {lines[-1] if lines else status}")
        return int(status or 0), str(out), str(err)

    def out(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return self.run(*args, env=env)[1].strip()

    def resolve(self, rev: str) -> str | None:
        status, out, _ = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        return out.strip() if status == 0 and out.strip() else None

    def blob_at(self, commit: str | None, path: str) -> bytes | None:
        if commit is None:
            return None
        try:
            blob = self.repo.commit(commit).tree / path
        except KeyError:
            return None
        if blob.type != "blob":
            return None
        data: bytes = blob.data_stream.read()
        return data

    def store_blob(self, data: bytes) -> str:
        from io import BytesIO

        from gitdb import IStream

        stream = self.repo.odb.store(IStream("blob", len(data), BytesIO(data)))
        return str(stream.hexsha.decode("ascii") if isinstance(stream.hexsha, bytes) else stream.hexsha)

    def refuse_if_busy(self) -> None:
        git_dir = Path(self.repo.git_dir)
        for name, what in BUSY.items():
            if (git_dir / name).exists():
                raise ProposalError(
                    f"{self.repo.working_dir} is in the middle of {what}; finish or abort it, then run this again"
                )

    def write_tree(self, base: str | None, entries: Mapping[str, str]) -> str:
        """The tree of ``base`` with ``entries`` (path -> blob sha) added or replaced, built in a temporary index."""
        with tempfile.TemporaryDirectory(prefix="aicache-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base is not None:
                self.run("read-tree", base, env=env)
            for path, blob in sorted(entries.items()):
                self.run("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            return self.out("write-tree", env=env)

    def commit_tree(self, tree: str, parent: str | None, message: str) -> str:
        parents = ["-p", parent] if parent else []
        return self.out("commit-tree", "--no-gpg-sign", tree, *parents, "-m", message.rstrip("\n"), env=IDENTITY)

    def create_ref(self, ref: str, sha: str, reason: str) -> str | None:
        """Create ``ref`` at ``sha`` only if it does not exist; None when done, else why not."""
        status, _, err = self.run("update-ref", "-m", reason, ref, sha, ZERO, check=False)
        if status == 0:
            return None
        if self.resolve(ref) is not None:
            return "exists"  # a lost race, or a name taken since it was checked
        lines = err.strip().splitlines()
        return lines[-1] if lines else f"git update-ref exited with {status}"

    def porcelain(self, *paths: str) -> str:
        return self.out("status", "--porcelain", "--untracked-files=all", "--", *paths)


@contextmanager
def _opened(repo: SettingsRepo) -> Iterator[_Git]:
    with _git_environment():
        g = _Git(repo.root, own=repo.kind == DEFAULT)
        import git

        try:
            yield g
        except git.GitError as exc:  # GitPython's own failures (a missing object, a damaged repository)
            raise ProposalError(f"git failed in {repo.root}: {str(exc).strip().splitlines()[-1]}") from None
        finally:
            g.close()


def _init_default(repo: SettingsRepo) -> None:
    """Create aicache's own settings repository with an empty first commit on ``main`` (idempotent, race-safe)."""
    if (repo.root / ".git").exists():
        return
    from aicache import paths

    paths.ensure_private_dir(repo.root)
    import git

    try:
        git.Repo.init(repo.root, initial_branch=LIVE_BRANCH).close()
    except git.GitError as exc:
        raise ProposalError(f"cannot create {repo.root}: {str(exc).strip().splitlines()[-1]}") from None
    with _opened(repo) as g:
        if g.resolve(f"refs/heads/{LIVE_BRANCH}") is None:
            first = g.commit_tree(g.write_tree(None, {}), None, "aicache: learned settings repository")
            g.create_ref(f"refs/heads/{LIVE_BRANCH}", first, "aicache: create")  # a concurrent creator may win


def _live_commit(g: _Git, repo: SettingsRepo) -> str | None:
    """The commit the live settings come from: main of aicache's own repository, HEAD of a project."""
    return g.resolve(f"refs/heads/{LIVE_BRANCH}" if repo.kind == DEFAULT else "HEAD")


def _free_branch(g: _Git, slug: str) -> str:
    base = f"{BRANCH_PREFIX}{time.strftime('%Y-%m-%d')}-{slug}"
    for number in range(1, 100):
        name = base if number == 1 else f"{base}-{number}"
        status, _, _ = g.run("rev-parse", "--verify", "--quiet", f"refs/heads/{name}", check=False)
        if status != 0:
            return name
    raise ProposalError(f"branches {base} to {base}-99 all exist; reject or delete some")


def _refuse_local_changes(g: _Git, repo: SettingsRepo) -> None:
    """A project's proposals are based on HEAD: while ``.aicache/`` differs from it (a revert not yet committed,
    an edit), HEAD is not what is live, and a proposal could neither be compared with the live files nor applied."""
    if repo.kind != DEFAULT and g.porcelain(repo.prefix):
        raise ProposalError(
            f"{repo.settings_dir} has local changes (a reverted or applied proposal not committed yet?): "
            f"proposals are based on HEAD; commit or discard them first (git status {repo.prefix})"
        )


def check_base(repo: SettingsRepo) -> None:
    """Refuse before any work is spent what would make a proposal wrong: an operation half-way, or (``--repo``)
    a ``.aicache/`` that differs from HEAD, the base every proposal there is compared with and committed on."""
    if not (repo.root / ".git").exists():
        return  # aicache's own repository, created by the first proposal
    with _opened(repo) as g:
        g.refuse_if_busy()
        _refuse_local_changes(g, repo)


def _make_commit(g: _Git, repo: SettingsRepo, files: Mapping[str, bytes], message: str) -> tuple[str, str]:
    """Write the proposal's objects (blobs, tree, commit) on top of the live settings; (commit, parent)."""
    g.refuse_if_busy()
    base = _live_commit(g, repo)
    if base is None:
        raise ProposalError(f"{repo.root} has no commit yet (unborn HEAD): commit something first")
    tree = g.write_tree(base, {repo.tree_path(name): g.store_blob(data) for name, data in files.items()})
    if tree == g.out("rev-parse", f"{base}^{{tree}}"):
        _refuse_local_changes(g, repo)  # then HEAD holds them, but the live files differ from HEAD
        raise ProposalError("the proposed files are what the live settings already hold: nothing to propose")
    return g.commit_tree(tree, base, message), base


# -- the store -----------------------------------------------------------------------------------------------


def start_run(conn: sqlite3.Connection, command: str, episode_ids: list[int], *, dry_run: bool = False) -> int:
    """Record the start of a ``learn`` run with the episodes it reads; returns its id."""
    with db.write_transaction(conn):
        cursor = conn.execute(
            "INSERT INTO learn_runs (started, command, dry_run, episode_ids) VALUES (?, ?, ?, ?)",
            [time.time(), command, int(dry_run), json.dumps(sorted(episode_ids))],
        )
    return int(cursor.lastrowid or 0)


def finish_run(conn: sqlite3.Connection, run_id: int, summary: Mapping[str, Any]) -> None:
    """Record a run's end and its result (aggregates, as evidence)."""
    check_evidence(summary)
    with db.write_transaction(conn):
        conn.execute(
            "UPDATE learn_runs SET finished = ?, summary = ? WHERE id = ?",
            [time.time(), json.dumps(summary, sort_keys=True), run_id],
        )


def _row(row: sqlite3.Row) -> Proposal:
    return Proposal(
        id=row["id"],
        run_id=row["run_id"],
        repo=row["repo"],
        repo_kind=row["repo_kind"],
        branch=row["branch"],
        commit=row["commit_sha"],
        slug=row["slug"],
        created=row["created"],
        status=row["status"],
        why=row["why"],
        evidence=json.loads(row["evidence"]),
        applied_commit=row["applied_sha"],
        reverted_commit=row["reverted_sha"],
        decided=row["decided"],
    )


def get(conn: sqlite3.Connection, proposal_id: int) -> Proposal:
    row = (
        conn.execute("SELECT * FROM proposals WHERE id = ?", [proposal_id]).fetchone()
        if db.is_row_id(proposal_id)
        else None
    )
    if row is None:
        raise UsageError(f"no proposal {proposal_id} (see `aicache proposals list`)")
    return _row(row)


def list_proposals(conn: sqlite3.Connection, status: str | None = None) -> list[Proposal]:
    """Proposals, newest first; only those with ``status`` when given."""
    if status is not None and status not in (PROPOSED, APPLIED, REJECTED, REVERTED):
        raise UsageError(f"unknown status {status!r}: use {PROPOSED}, {APPLIED}, {REJECTED} or {REVERTED}")
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    return [_row(r) for r in conn.execute(f"SELECT * FROM proposals {where} ORDER BY id DESC", args)]


def _decide(conn: sqlite3.Connection, proposal: Proposal, status: str, **columns: Any) -> Proposal:
    """Move ``proposal`` to ``status`` if nobody else changed it meanwhile (inside the caller's transaction)."""
    names = ", ".join(f"{name} = ?" for name in columns)
    cursor = conn.execute(
        f"UPDATE proposals SET status = ?, decided = ?{', ' + names if names else ''} WHERE id = ? AND status = ?",
        [status, time.time(), *columns.values(), proposal.id, proposal.status],
    )
    if cursor.rowcount != 1:
        raise ProposalError(f"proposal {proposal.id} was changed by another command meanwhile; see `proposals show`")
    return get(conn, proposal.id)


# -- the public operations -----------------------------------------------------------------------------------


def propose(
    repo: SettingsRepo,
    slug: str,
    files: Mapping[str, bytes],
    message: str,
    evidence: Mapping[str, Any],
    episode_ids: list[int],
    *,
    run_id: int | None = None,
    conn: sqlite3.Connection | None = None,
) -> Proposal:
    """Make the branch ``aicache/learn/<date>-<slug>`` with one commit writing ``files`` into the settings folder.

    ``files`` maps names inside the settings folder (``learned.toml``, artefacts) to their new bytes; ``message``
    is the commit's one-line summary and ``evidence`` its aggregates (see ``check_evidence``). The proposal is
    recorded in the store under ``run_id`` (a run of its own, with ``episode_ids``, when not given).
    """
    _check_slug(slug)
    _check_files(files)
    _check_message(message)
    check_evidence(evidence)
    own_conn = conn is None
    conn = conn or db.connect()
    try:
        if repo.kind == DEFAULT:
            with _git_environment():
                _init_default(repo)
        with _opened(repo) as g:
            commit, _ = _make_commit(g, repo, files, commit_message(message, slug, evidence))
            branch = _free_branch(g, slug)
            return _publish(conn, g, repo, branch, commit, slug, evidence, episode_ids, run_id)
    finally:
        if own_conn:
            conn.close()


def _publish(
    conn: sqlite3.Connection,
    g: _Git,
    repo: SettingsRepo,
    branch: str,
    commit: str,
    slug: str,
    evidence: Mapping[str, Any],
    episode_ids: list[int],
    run_id: int | None,
) -> Proposal:
    """Create the branch and its row together: the ref inside the store's transaction, removed if that fails."""
    ref = f"refs/heads/{branch}"
    created = False
    try:
        with db.write_transaction(conn):
            now = time.time()
            if run_id is None:
                command = evidence.get("command")
                run_id = conn.execute(
                    "INSERT INTO learn_runs (started, finished, command, dry_run, episode_ids, summary)"
                    " VALUES (?, ?, ?, 0, ?, ?)",
                    [
                        now,
                        now,
                        command if isinstance(command, str) else "propose",
                        json.dumps(sorted(episode_ids)),
                        json.dumps({"proposals": 1}),
                    ],
                ).lastrowid
            cursor = conn.execute(
                "INSERT INTO proposals (run_id, repo, repo_kind, branch, commit_sha, slug, created, status, evidence)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    str(repo.settings_dir),
                    repo.kind,
                    branch,
                    commit,
                    slug,
                    now,
                    PROPOSED,
                    json.dumps(evidence, sort_keys=True),
                ],
            )
            failure = g.create_ref(ref, commit, f"aicache learn: propose {slug}")
            if failure == "exists":
                raise ProposalError(
                    f"branch {branch} was created by someone else meanwhile (another learn run?); "
                    "nothing was overwritten: run it again"
                )
            if failure is not None:
                raise ProposalError(f"cannot create branch {branch}: {failure}")
            created = True
    except BaseException:
        if created:
            g.run("update-ref", "-d", ref, commit, check=False)
        raise
    return get(conn, int(cursor.lastrowid or 0))


def _text_diff(path: str, old: bytes | None, new: bytes | None) -> str:
    if old == new:
        return ""
    a, b = (f"a/{path}" if old is not None else "/dev/null"), (f"b/{path}" if new is not None else "/dev/null")
    try:
        old_text = (old or b"").decode("utf-8")
        new_text = (new or b"").decode("utf-8")
    except UnicodeDecodeError:
        return f"Binary files {a} and {b} differ\n"
    if "\0" in old_text or "\0" in new_text:
        return f"Binary files {a} and {b} differ\n"
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True), new_text.splitlines(keepends=True), fromfile=a, tofile=b
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def preview(repo: SettingsRepo, files: Mapping[str, bytes]) -> str:
    """The unified diff ``propose`` would commit (for ``learn --dry-run``). Writes nothing at all.

    aicache's own repository is not created if missing (everything is then new); only reads run in an
    existing one (``GIT_OPTIONAL_LOCKS=0``, so not even an index refresh is written).
    """
    _check_files(files)
    old: dict[str, bytes | None] = dict.fromkeys(files)
    if (repo.root / ".git").exists():
        with _opened(repo) as g:
            base = _live_commit(g, repo)
            old = {name: g.blob_at(base, repo.tree_path(name)) for name in files}
    return "".join(_text_diff(repo.tree_path(name), old[name], files[name]) for name in sorted(files))


def show(conn: sqlite3.Connection, proposal_id: int) -> Detail:
    """The record, and the commit's message and diff while the repository still has the commit."""
    proposal = get(conn, proposal_id)
    if not (proposal.settings_repo.root / ".git").exists():
        return Detail(proposal, False, "", "")
    with _opened(proposal.settings_repo) as g:
        exists = g.resolve(f"refs/heads/{proposal.branch}") is not None
        status, message, _ = g.run("log", "-1", "--format=%B", proposal.commit, check=False)
        if status != 0:
            return Detail(proposal, exists, "", "")
        diff = g.run("diff", "--no-color", "--no-ext-diff", f"{proposal.commit}^", proposal.commit, check=False)[1]
        return Detail(proposal, exists, message.strip() + "\n", diff.strip() + "\n" if diff.strip() else "")


def _expect(proposal: Proposal, wanted: str, verb: str) -> None:
    if proposal.status == wanted:
        return
    hint = {
        APPLIED: "; `proposals revert` undoes it" if verb != "revert" else "",
        PROPOSED: "; it was never applied" if verb == "revert" else "",
    }.get(proposal.status, "")
    raise ProposalError(f"cannot {verb} proposal {proposal.id}: it is already {proposal.status}{hint}")


def _changed_paths(g: _Git, proposal: Proposal) -> list[str]:
    out = g.out("diff-tree", "-r", "--no-commit-id", "--name-only", f"{proposal.commit}^", proposal.commit)
    return [line for line in out.splitlines() if line]


def _branch_tip(g: _Git, proposal: Proposal) -> None:
    tip = g.resolve(f"refs/heads/{proposal.branch}")
    if tip is None:
        raise ProposalError(
            f"branch {proposal.branch} is gone (deleted outside aicache); reject proposal {proposal.id}"
        )
    if tip != proposal.commit:
        raise ProposalError(
            f"branch {proposal.branch} moved since it was proposed ({proposal.commit[:10]} -> {tip[:10]}); "
            "nothing applied"
        )


def _own_repo_ready(g: _Git, repo: SettingsRepo) -> None:
    """aicache's own repository must be on main with no local edits before aicache commits there."""
    head = g.run("symbolic-ref", "-q", "HEAD", check=False)[1].strip()
    if head != f"refs/heads/{LIVE_BRANCH}":
        raise ProposalError(f"{repo.root} is not on its {LIVE_BRANCH} branch; check it out there first")
    if g.porcelain():
        raise ProposalError(f"{repo.root} has local changes; commit or discard them first")


def _write_atomic(path: Path, data: bytes | None) -> None:
    """Write a learned file into the user's ``.aicache/`` (or remove it): readable like any file they commit."""
    if data is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(path, data, mode=0o644)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _commit_hint(g: _Git, repo: SettingsRepo) -> str:
    """What the user should do after aicache wrote into a project's ``.aicache/``: aicache never commits there."""
    if not g.porcelain(repo.prefix):
        return f"{repo.prefix}/ now matches HEAD: nothing to commit"
    return f"review and commit it: git add {repo.prefix} && git commit"


def apply(conn: sqlite3.Connection, proposal_id: int) -> Outcome:
    """Merge a proposal into the live settings and record it.

    aicache's own repository: a fast-forward (or a merge commit) of ``main``, checked out in its working tree.
    A project: the proposal's files are written into ``.aicache/`` (which must have no local changes), for the
    user to review and commit; the user's index and HEAD are left alone.
    """
    repo = get(conn, proposal_id).settings_repo
    with _opened(repo) as g, db.write_transaction(conn):
        proposal = get(conn, proposal_id)  # again, under the write lock: another apply may have won
        _expect(proposal, PROPOSED, "apply")
        g.refuse_if_busy()
        _branch_tip(g, proposal)
        if repo.kind == DEFAULT:
            _own_repo_ready(g, repo)
            # --ff and --no-verify-signatures: a global merge.ff=only or merge.verifySignatures is for the
            # user's own repositories, not for this one
            merge = ("merge", "--ff", "--no-verify-signatures", "--no-edit", "--no-gpg-sign")
            message = f"aicache: apply {proposal.branch}"
            status, _, err = g.run(*merge, "-m", message, proposal.commit, env=IDENTITY, check=False)
            if status != 0:
                conflicted = (Path(g.repo.git_dir) / "MERGE_HEAD").exists()
                g.run("merge", "--abort", check=False)
                if conflicted:
                    raise ProposalError(f"proposal {proposal.id} conflicts with the live settings; nothing applied")
                lines = err.strip().splitlines()
                raise ProposalError(f"git merge failed in {repo.root}: {lines[-1] if lines else status}")
            head = g.out("rev-parse", "HEAD")
            actions: tuple[str, ...] = (f"merged {proposal.branch} into {LIVE_BRANCH} of {repo.root} ({head[:10]})",)
            return Outcome(_decide(conn, proposal, APPLIED, applied_sha=head), actions)
        paths = _changed_paths(g, proposal)
        if g.porcelain(repo.prefix):
            raise ProposalError(f"{repo.settings_dir} has local changes; commit or stash them first")
        head_commit = g.resolve("HEAD")
        writes: dict[str, bytes | None] = {}
        for path in paths:
            base, new, current = (
                g.blob_at(f"{proposal.commit}^", path),
                g.blob_at(proposal.commit, path),
                g.blob_at(head_commit, path),
            )
            if current == new:
                continue
            if current != base:
                raise ProposalError(f"conflict: {path} changed since proposal {proposal.id} was made; nothing applied")
            writes[path] = new
        for path, data in writes.items():
            _write_atomic(repo.root / path, data)
        actions = (
            *(f"wrote {path}" for path in writes),
            _commit_hint(g, repo) if writes else "the files were already committed",
        )
        return Outcome(_decide(conn, proposal, APPLIED), actions)


def reject(conn: sqlite3.Connection, proposal_id: int, why: str | None = None) -> Outcome:
    """Delete a proposal's branch and record the rejection and why."""
    repo = get(conn, proposal_id).settings_repo
    with db.write_transaction(conn):
        proposal = get(conn, proposal_id)
        _expect(proposal, PROPOSED, "reject")
        action = f"branch {proposal.branch} was already gone"
        if (repo.root / ".git").exists():
            with _opened(repo) as g:
                tip = g.resolve(f"refs/heads/{proposal.branch}")
                if tip is not None and tip != proposal.commit:
                    raise ProposalError(
                        f"branch {proposal.branch} moved since it was proposed (commits were added?); not deleted"
                    )
                if tip is not None:
                    g.run("update-ref", "-d", f"refs/heads/{proposal.branch}", proposal.commit)
                    action = f"deleted branch {proposal.branch}"
        return Outcome(_decide(conn, proposal, REJECTED, why=why), (action,))


def revert(conn: sqlite3.Connection, proposal_id: int) -> Outcome:
    """Undo an applied proposal: a revert commit on ``main`` of aicache's own repository, or, in a project,
    ``.aicache/``'s files put back as they were before it (for the user to commit)."""
    repo = get(conn, proposal_id).settings_repo
    with _opened(repo) as g, db.write_transaction(conn):
        proposal = get(conn, proposal_id)
        _expect(proposal, APPLIED, "revert")
        g.refuse_if_busy()
        if g.resolve(proposal.commit) is None:
            raise ProposalError(f"the commit of proposal {proposal.id} is gone from {repo.root}")
        if repo.kind == DEFAULT:
            _own_repo_ready(g, repo)
            revert = ("revert", "--no-edit", "--no-gpg-sign", proposal.commit)
            status, _, _ = g.run(*revert, env=IDENTITY, check=False)
            if status != 0:
                g.run("revert", "--abort", check=False)
                raise ProposalError(f"reverting proposal {proposal.id} conflicts with later changes; nothing reverted")
            head = g.out("rev-parse", "HEAD")
            actions: tuple[str, ...] = (
                f"reverted {proposal.commit[:10]} on {LIVE_BRANCH} of {repo.root} ({head[:10]})",
            )
            return Outcome(_decide(conn, proposal, REVERTED, reverted_sha=head), actions)
        writes: dict[str, bytes | None] = {}
        for path in _changed_paths(g, proposal):
            if _read(repo.root / path) != g.blob_at(proposal.commit, path):
                raise ProposalError(
                    f"conflict: {path} changed since proposal {proposal.id} was applied; nothing reverted"
                )
            writes[path] = g.blob_at(f"{proposal.commit}^", path)
        for path, data in writes.items():
            _write_atomic(repo.root / path, data)
        actions = (
            *(f"{'removed' if data is None else 'restored'} {path}" for path, data in writes.items()),
            _commit_hint(g, repo),
        )
        return Outcome(_decide(conn, proposal, REVERTED), actions)
