"""Git hooks: suggest a commit message from the staged diff, and learn how much of it the user kept.

Install
    ``install`` finds the hooks directory the way git does (``git rev-parse --git-path hooks``, so
    ``core.hooksPath``, husky-style setups and linked worktrees work) and writes two POSIX sh scripts,
    ``prepare-commit-msg`` and ``post-commit``. A hook already there is never overwritten: it is renamed to
    ``<name>.aicache-chained`` (a rename keeps its bytes, mode and times), our script runs it first and
    respects its exit status, and ``uninstall`` renames it back. ``.aicache-hooks.json`` in the same directory
    records what install did (a fingerprint of each kept hook, whether it set the global ``core.hooksPath``);
    uninstall works from the files themselves and uses the record to check and report, so a hook the user
    put in place of ours after install is left alone. ``--global DIR`` installs into DIR and points the global
    ``core.hooksPath`` at it, unless that already points somewhere else.

The scripts
    bake in the interpreter and the directory aicache was imported from, so they work without PATH or an
    activated virtualenv, and they call ``main`` here rather than the Typer CLI: importing Typer (and the
    pydantic it pulls in) costs ~150 ms, more than the rest of a cache hit. Decisions that need no Python are
    made in sh: a commit with a message source (``-m``, ``-F``, template, merge, squash, amend) never starts
    Python, nor does a post-commit with no pending suggestion. Python runs with stdin from /dev/null and, in
    ``main``, leaves the terminal's session, so nothing it starts can prompt. The scripts set
    ``AICACHE_IN_HOOK=1`` for it and do nothing when they find it already set: a commit made by something
    aicache started (a wrapped AI CLI, for one) never asks aicache again.

prepare-commit-msg
    The staged diff (``aicache.hooks.diffs``: lock, binary and ignored files left out, cut to ``hook.max_diff_bytes``)
    is the piped input of an ask with the ``hook.template`` template (default ``commit-message``), so its hash is
    part of the cache partition: the same diff is an instant exact hit, another diff never reuses the answer.
    The semantic tier is off for these asks: the question is always the same sentence, so it could only ever
    match exactly. The suggestion goes above git's comment lines; a pending-suggestion file in the git dir
    (per worktree) remembers it for post-commit. The hook never blocks a commit: all the work runs in a worker
    thread that gets ``hook.timeout`` seconds (default 5; HTTP timeouts are cut to what is left), and on any
    failure, timeout included, one comment line in the message file says why nothing was suggested.

post-commit
    Compares the committed message with the suggestion (``difflib`` ratio, 1.0 = kept as is) and stores
    ``{"kept_similarity": ..., "commit": sha}`` as JSON in the suggestion's episode ``hook_feedback``
    (``feedback`` is the user's word, good or bad, which ``aicache feedback`` sets).
    Git ignores what post-commit does, so the comparison runs in the background, silently, and the commit
    does not wait for it; the script first claims the pending suggestion (a rename) and the new commit's sha,
    so a next commit started at once can never be compared with this one's suggestion.

Git's environment
    Inside a hook git exports ``GIT_DIR``, ``GIT_INDEX_FILE`` (a temporary index for ``commit -a`` and
    ``commit <paths>``) and friends. The diff is read with them, because they name the commit being made, and
    with ``GIT_OPTIONAL_LOCKS=0`` so git writes no index refresh. Then git's repository-local variables (the
    list ``git rev-parse --local-env-vars`` prints) are removed from the process environment before anything
    else runs (the provider, a wrapped CLI, GitPython), so nothing aicache starts can act on the user's index or
    repository. ``install``, ``uninstall`` and ``status`` drop them from the start.
"""

from __future__ import annotations

#: set by the scripts (spelled out in their sh) for everything aicache starts; a hook that finds it set does
#: nothing. Set it to skip aicache for one commit, or around commits that aicache's own code makes.
GUARD_ENV = "AICACHE_IN_HOOK"
STATE_NAME = "aicache-suggestion.json"


def main(argv: list[str] | None = None) -> None:
    """What installed scripts call (``from aicache.hooks import main``); the work is in ``hooks.run``."""
    from aicache.hooks.run import main as run_main

    run_main(argv)
