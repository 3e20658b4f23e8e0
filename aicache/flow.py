"""The ``ask`` flow: exact tier, semantic tier, provider, store, episode.

    request -> exact lookup (SQLite, no model) -> semantic lookup (only if the partition has vectors)
            -> hit: replay the answer through ``on_text``     miss: the provider streams through ``on_text``
            -> complete answers only are stored -> one episode, always (hit, miss, error, interrupt)

The semantic tier, numpy, onnxruntime and httpx are imported only when the flow reaches them, so an exact hit
pays for none of them. Nothing here prints: notes for the user go to ``on_note``; warnings (what the user must
know even with ``--quiet``: an answer cut short, a store that could not keep the answer) go to ``on_warning``
and into ``AskResult.warnings``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicache import cache, labels, memory
from aicache.cachekeys import content_hash
from aicache.config import HttpSettings, Settings
from aicache.db import write_transaction
from aicache.errors import AicacheError, CacheMissError, ConfigError, ProviderError, StoreError, UsageError
from aicache.hooks.gitinfo import repo_and_head
from aicache.memory import Outcome
from aicache.normalize import EMPTY_QUESTION, has_content
from aicache.providers.base import Completion, ProviderRequest, TextSink
from aicache.request import AskRequest

if TYPE_CHECKING:
    from aicache.providers import Endpoint

NoteSink = Callable[[str], None]


class CacheMode(StrEnum):
    NORMAL = "normal"
    NO_CACHE = "no_cache"  # neither read nor write the cache (the episode is still recorded)
    REFRESH = "refresh"  # ask the provider again and replace the entry
    CACHE_ONLY = "cache_only"  # never call a provider


_PROVIDER_OUTCOMES = {CacheMode.REFRESH: Outcome.REFRESH, CacheMode.NO_CACHE: Outcome.BYPASS}


@dataclass(frozen=True)
class AskResult:
    """What one ask gave: the answer, how it was found (``outcome``) and what it cost. ``aicache ask --json`` prints
    these fields as they are, so the library and the command mean the same by each."""

    answer: str
    outcome: Outcome
    episode_id: int | None  # None when no episode could be written (a read-only or full store)
    entry_id: int | None
    provider: str
    model: str
    similarity: float | None = None
    threshold: float | None = None
    score: float | None = None  # the hit decision's score of the entry served, when a model judged it
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None  # US dollars this ask paid: 0.0 on a hit, None when the model has no price
    cached: bool = False  # the answer was served from the cache (an exact or semantic hit), as in --json
    stored: bool = False  # this ask wrote a new cache entry (a complete answer from the provider), as in --json
    # what prepare changed or withheld before sending (redactions, a withheld key), then the flow's warnings
    warnings: tuple[str, ...] = ()


@dataclass
class _Semantic:
    """What the semantic tier said about this request, kept for the episode and for storing a new entry."""

    entry_id: int | None = None
    similarity: float | None = None
    threshold: float | None = None
    verdicts: list[dict[str, Any]] | None = None
    vector: bytes | None = None
    decision: str | None = None
    one_time_s: float = 0.0  # spent preparing the embedding model for this lookup: not the question's latency


@dataclass
class AskContext:
    settings: Settings
    conn: sqlite3.Connection
    api_key: str | None = None
    #: when set, the endpoint and key to send with, resolved only when a request is sent (it reads the key file)
    key: Callable[[], Endpoint] | None = None
    stream: bool = True
    mode: CacheMode = CacheMode.NORMAL
    source: str = "cli"
    cwd: Path = field(default_factory=Path.cwd)
    on_note: NoteSink = lambda _note: None
    on_warning: NoteSink = lambda _warning: None


def _chunks(text: str) -> list[str]:
    """A hit is replayed the way a miss streams: line by line, so renderers see the same shape."""
    return text.splitlines(keepends=True) or [text]


def _replay(answer: str, stream: bool, on_text: TextSink) -> None:
    for piece in _chunks(answer) if stream else [answer]:
        on_text(piece)


def _base_episode(request: AskRequest, ctx: AskContext) -> memory.Episode:
    root, head = repo_and_head(ctx.cwd)
    return memory.Episode(
        question=request.question,
        outcome=Outcome.ERROR,
        provider=request.provider,
        model=request.model,
        partition_key=request.partition_key,
        template=request.template.name if request.template else None,
        cwd=str(ctx.cwd),
        repo_root=root,
        repo_head=head,
        input_bytes=len(request.input_text.encode("utf-8")) if request.input_text is not None else None,
        input_hash=content_hash(request.input_text) if request.input_text is not None else None,
        source=ctx.source,
    )


def _serve_hit(
    request: AskRequest, ctx: AskContext, episode: memory.Episode, entry: cache.Entry, started: float
) -> AskResult:
    episode.entry_id = entry.id
    episode.latency_ms = (time.perf_counter() - started) * 1000
    try:
        with write_transaction(ctx.conn):
            cache.note_hit(ctx.conn, entry.id)
            # Reference the episode that stored this answer rather than copy it; copy only if there is none.
            episode.answer_from = memory.answer_source(ctx.conn, entry.id, entry.answer)
            episode.answer = None if episode.answer_from is not None else entry.answer
            episode_id = memory.insert(ctx.conn, episode)
    except StoreError as exc:
        # The answer is already shown; a read-only or locked store must not turn a hit into a failure.
        ctx.on_warning(f"served from the cache, but the episode was not recorded: {exc}")
        episode_id = None
    return AskResult(
        answer=entry.answer,
        outcome=episode.outcome,
        episode_id=episode_id,
        entry_id=entry.id,
        provider=request.provider,
        model=entry.model or request.model,
        similarity=episode.similarity,
        threshold=episode.threshold,
        score=memory.verdict_on(episode.verdicts, entry.id).get("score"),
        latency_ms=episode.latency_ms,
        tokens_in=entry.tokens_in,
        tokens_out=entry.tokens_out,
        cost=0.0,  # what this ask paid: nothing, whatever the model's price (the entry's own cost is in `show`)
        cached=True,
    )


class _OneTime:
    """Tells the user when the embedding model is being prepared (exported to ONNX, once per model), at the moment
    it starts, and how long it took; and measures it, because a one-time cost is not this question's latency
    (nor, through the misses' latencies, time a later hit saves)."""

    def __init__(self, ctx: AskContext) -> None:
        self.ctx = ctx
        self.began: float | None = None
        self.seconds = 0.0

    def starting(self) -> None:
        self.began = time.perf_counter()
        self.ctx.on_note("semantic tier: preparing the embedding model (exporting it to ONNX, once per model)...")

    def __enter__(self) -> _OneTime:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.began is not None:
            self.seconds = time.perf_counter() - self.began
            self.began = None
            self.ctx.on_note(f"semantic tier: the embedding model is ready (took {self.seconds:.1f} s)")


def _semantic_lookup(request: AskRequest, ctx: AskContext) -> _Semantic:
    if not ctx.settings.get("cache.semantic", True):
        return _Semantic()
    from aicache.semantic import tier

    one_time = _OneTime(ctx)  # a lookup needs the model only when the partition has vectors: rarely the first run
    try:
        template = request.template.name if request.template else None
        with one_time:
            result = tier.lookup(
                ctx.conn, ctx.settings, request.partition_key, request.question, template, one_time.starting
            )
    except AicacheError as exc:
        # The semantic tier is an optimisation: if it cannot run, the question is still answered.
        ctx.on_note(f"semantic tier skipped: {exc}")
        return _Semantic(one_time_s=one_time.seconds)
    if result.rebuilt_index:
        ctx.on_note("the vector index was missing or damaged and has been rebuilt from the database")
    found = _Semantic(
        result.entry_id, result.similarity, result.threshold, result.verdicts, result.vector, result.decision
    )
    found.one_time_s = one_time.seconds
    return found


def to_provider(request: AskRequest, *, stream: bool, api_key: str | None, http: HttpSettings) -> ProviderRequest:
    """What the provider is sent for ``request`` (also a shadow check's second asking)."""
    return ProviderRequest(
        model=request.model,
        messages=request.messages(),
        system=request.effective_system,
        params=request.params,
        stream=stream,
        base_url=request.base_url,
        api_key=api_key,
        http=http,
    )


def _call_provider(request: AskRequest, ctx: AskContext, on_text: TextSink) -> Completion:
    from aicache.providers import get_provider

    api_key = ctx.api_key
    if ctx.key is not None:
        found = ctx.key()
        if found.withheld:
            ctx.on_warning(found.withheld)
        api_key = found.api_key
    provider_request = to_provider(request, stream=ctx.stream, api_key=api_key, http=ctx.settings.http)
    return get_provider(request.provider).complete(provider_request, on_text)


Embedding = tuple[bytes | None, bytes | None, str | None]  # the question's vector, the answer's, their model id


def _vector_for_store(
    request: AskRequest, ctx: AskContext, found: _Semantic, episode: memory.Episode, answer: str
) -> tuple[Embedding, float]:
    """The question's and the answer's vectors and their model id for the new entry, and the seconds spent
    preparing the model (the first stored answer exports it: only then, once an answer is there to store, is the
    model needed). A question too long for the model gets no vector (exact repeats only), and the episode says
    why."""
    if not ctx.settings.get("cache.semantic", True):
        return (None, None, None), 0.0
    from aicache.semantic import tier

    one_time = _OneTime(ctx)
    try:
        with one_time:
            vector, unread = (
                (found.vector, None)
                if found.vector
                else tier.embed_question(ctx.settings, request.question, one_time.starting)
            )
        if vector is None:
            episode.decision = unread
            return (None, None, None), one_time.seconds
        return (vector, tier.embed_answer(ctx.settings, answer), tier.model_id(ctx.settings)), one_time.seconds
    except AicacheError as exc:
        ctx.on_note(f"answer cached for exact repeats only: {exc}")
        return (None, None, None), one_time.seconds


def _record_failure(
    ctx: AskContext, episode: memory.Episode, error: str, partial: str, started: float, ttfb: float | None
) -> None:
    episode.outcome = Outcome.ERROR
    episode.error = error
    episode.answer = partial or None
    episode.ttfb_ms = ttfb  # text shown before the failure: when it came is measured as for a complete answer
    episode.latency_ms = (time.perf_counter() - started) * 1000
    try:
        memory.record(ctx.conn, episode)
    except AicacheError as exc:
        ctx.on_note(f"could not record the failed episode: {exc}")


def ask(request: AskRequest, ctx: AskContext, on_text: TextSink) -> AskResult:
    """Answer ``request`` from the cache or the provider; ``on_text`` receives the answer as it comes.

    ``request`` must come from ``prepare.prepare`` (redaction, key, partition): ``aicache.ask`` is the public way in.
    """
    if not has_content(request.question):
        raise UsageError(EMPTY_QUESTION)  # checked here too, so no caller can send or cache an empty question
    warned: list[str] = []

    def warn(message: str) -> None:
        warned.append(message)
        ctx.on_warning(message)

    # A context may serve many asks: each result lists its own warnings only.
    result = _answer(request, dataclasses.replace(ctx, on_warning=warn), on_text)
    ctx.on_note(outcome_note(result))
    if result.outcome in (Outcome.SEMANTIC_HIT, Outcome.MISS) and result.episode_id is not None:
        _maybe_shadow_check(request, ctx, result)
    return dataclasses.replace(result, warnings=result.warnings + tuple(warned))


def outcome_note(result: AskResult) -> str:
    """The note that says how the answer was found: ``cache: exact hit``, ``cache: miss (stored)``..."""
    if result.outcome is Outcome.EXACT_HIT:
        return "cache: exact hit"
    if result.outcome is Outcome.SEMANTIC_HIT:
        score = "" if result.score is None else f", score {result.score:.2f}"
        return f"cache: semantic hit (similarity {result.similarity:.2f}{score})"
    return f"cache: {result.outcome.replace('_', ' ')} ({'stored' if result.stored else 'not stored'})"


def _maybe_shadow_check(request: AskRequest, ctx: AskContext, result: AskResult) -> None:
    """Start a shadow check (``learn/shadow.py``) for ``learn.shadow_rate`` of the asks the semantic tier judged,
    detached and after the answer was shown: the user never waits for it."""
    rate = float(ctx.settings.get("learn.shadow_rate", 0) or 0)
    if rate <= 0 or not ctx.settings.get("judge.model") or ctx.mode is not CacheMode.NORMAL:
        return
    import random

    if random.random() >= rate:
        return
    import json
    import subprocess
    import sys

    api_key = ctx.api_key
    if ctx.key is not None:
        try:
            api_key = ctx.key().api_key
        except ConfigError:
            return  # a key file that cannot be read: the hit needed none, and a shadow check is optional
    job = {
        "kind": "hit" if result.outcome == Outcome.SEMANTIC_HIT else "miss",
        "episode": result.episode_id,
        "entry": result.entry_id,
        "key": api_key,
        "request": {
            "question": request.question,
            "provider": request.provider,
            "model": request.model,
            "base_url": request.base_url,
            "system": request.system,
            "input_text": request.input_text,
            "template": request.template.name if request.template else None,
            "params": list(request.params),
        },
    }
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "aicache.learn.shadow"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(ctx.cwd),
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps(job).encode("utf-8"))
        child.stdin.close()
    except OSError as exc:
        ctx.on_note(f"shadow check not started: {exc.strerror or exc}")


def _answer(request: AskRequest, ctx: AskContext, on_text: TextSink) -> AskResult:
    started = time.perf_counter()
    episode = _base_episode(request, ctx)
    found = _Semantic()
    if ctx.mode in (CacheMode.NORMAL, CacheMode.CACHE_ONLY):
        entry = cache.lookup_exact(ctx.conn, request.exact_key)
        if entry is not None:
            episode.outcome = Outcome.EXACT_HIT
            _replay(entry.answer, ctx.stream, on_text)
            return _serve_hit(request, ctx, episode, entry, started)
        found = _semantic_lookup(request, ctx)
        started += found.one_time_s  # from here on, latency is measured as if the model had been ready
        episode.similarity, episode.threshold, episode.verdicts, episode.decision = (
            found.similarity,
            found.threshold,
            found.verdicts,
            found.decision,
        )
        hit = cache.get_entry(ctx.conn, found.entry_id) if found.entry_id is not None else None
        if hit is not None and cache.servable(hit):
            episode.outcome = Outcome.SEMANTIC_HIT
            _replay(hit.answer, ctx.stream, on_text)
            return _serve_hit(request, ctx, episode, hit, started)
    if ctx.mode is CacheMode.CACHE_ONLY:
        episode.outcome = Outcome.CACHE_MISS
        episode.latency_ms = (time.perf_counter() - started) * 1000
        memory.record(ctx.conn, episode)
        raise CacheMissError("not in the cache (--cache-only)")
    if ctx.mode is CacheMode.NORMAL:
        return _ask_once(request, ctx, on_text, episode, found, started)
    return _ask_provider(request, ctx, on_text, episode, found, started)


def _ask_once(
    request: AskRequest,
    ctx: AskContext,
    on_text: TextSink,
    episode: memory.Episode,
    found: _Semantic,
    started: float,
) -> AskResult:
    """A miss, asked of the provider by one process at a time per exact key (``inflight``): the holder of the key
    looks it up again first, and serves what another process stored meanwhile as an exact hit; it asks only if
    nothing was stored. It looks again whether or not it waited: another process may have stored its answer and let
    go between this one's first lookup and its taking the key."""
    from aicache import inflight

    http = ctx.settings.http
    wait = http.connect_timeout + http.read_timeout  # as long as the first one may go without a byte

    def waiting() -> None:
        ctx.on_note("the same question is being asked by another aicache process: waiting for its answer")

    with inflight.single_flight(request.exact_key, wait, waiting):
        entry = cache.lookup_exact(ctx.conn, request.exact_key)  # one indexed SELECT
        if entry is not None:
            episode.outcome = Outcome.EXACT_HIT
            episode.similarity = episode.threshold = episode.verdicts = None  # the exact tier served it
            _replay(entry.answer, ctx.stream, on_text)
            return _serve_hit(request, ctx, episode, entry, started)
        return _ask_provider(request, ctx, on_text, episode, found, started)


def _ask_provider(
    request: AskRequest,
    ctx: AskContext,
    on_text: TextSink,
    episode: memory.Episode,
    found: _Semantic,
    started: float,
) -> AskResult:
    shown: list[str] = []
    ttfb: float | None = None  # ms to the first text; recorded on a failure too, null only if no text came

    def collect(text: str) -> None:
        nonlocal ttfb
        if ttfb is None:
            ttfb = (time.perf_counter() - started) * 1000
        shown.append(text)
        on_text(text)

    try:
        completion = _call_provider(request, ctx, collect)
    except ProviderError as exc:
        _record_failure(ctx, episode, str(exc), exc.partial or "".join(shown), started, ttfb)
        raise
    except KeyboardInterrupt:
        _record_failure(ctx, episode, "interrupted", "".join(shown), started, ttfb)
        raise
    cost = cache.price(
        ctx.settings.get("prices", {}),
        completion.model or request.model,
        completion.tokens_in,
        completion.tokens_out,
    )
    # An empty or blank answer is shown as given but never stored: replayed, it would answer every repeat with
    # nothing and never ask again. A truncated one is never stored either.
    blank = completion.complete and not completion.text.strip()
    cacheable = completion.complete and not blank and ctx.mode is not CacheMode.NO_CACHE
    embedding, one_time_s = (
        _vector_for_store(request, ctx, found, episode, completion.text) if cacheable else ((None, None, None), 0.0)
    )
    started += one_time_s
    episode.outcome = _PROVIDER_OUTCOMES.get(ctx.mode, Outcome.MISS)
    episode.answer = completion.text
    episode.ttfb_ms = ttfb
    episode.tokens_in, episode.tokens_out, episode.cost = completion.tokens_in, completion.tokens_out, cost
    if not completion.complete:
        episode.error = f"incomplete answer (finish reason {completion.finish_reason}); not cached"
        ctx.on_warning(f"the answer was cut short (finish reason {completion.finish_reason}); not cached")
    elif blank:
        episode.error = "empty answer; not cached"
        ctx.on_note("the answer was empty (or only whitespace); not cached")
    episode.latency_ms = (time.perf_counter() - started) * 1000
    entry_id, episode_id = _record_answer(request, ctx, completion, episode, cost, cacheable, embedding)
    if entry_id is not None and embedding[0] is not None:
        _index_new_entry(ctx)
    return AskResult(
        answer=completion.text,
        outcome=episode.outcome,
        episode_id=episode_id,
        entry_id=entry_id,
        provider=request.provider,
        model=completion.model or request.model,
        similarity=episode.similarity,  # the nearest cached question's, when the semantic tier looked
        threshold=episode.threshold,
        latency_ms=episode.latency_ms,
        ttfb_ms=ttfb,
        tokens_in=completion.tokens_in,
        tokens_out=completion.tokens_out,
        cost=cost,
        stored=entry_id is not None,
    )


def _label_refreshed_hit(ctx: AskContext, request: AskRequest) -> None:
    """``--refresh`` right after a hit says that hit was wrong: label it, for the negative list and ``learn``."""
    wrong_hit = memory.last_hit(ctx.conn, request.partition_key, request.question)
    if wrong_hit is not None:
        with contextlib.suppress(UsageError):  # its answer is gone (forgotten): nothing left to label
            labels.label_episode(ctx.conn, wrong_hit, good=False, source="refresh")


def _record_answer(
    request: AskRequest,
    ctx: AskContext,
    completion: Completion,
    episode: memory.Episode,
    cost: float | None,
    cacheable: bool,
    embedding: Embedding,
) -> tuple[int | None, int | None]:
    """Store the entry (if cacheable) and the episode in one transaction; returns their ids.

    The provider has answered and the user has paid for it: a store that cannot be written (full disk, read-only,
    locked past its timeout) must not lose the answer too. The transaction rolls back whole, the user is told in
    one line (a warning), and the answer is still returned, not cached (entry None, episode None).
    """
    entry_id = None
    vector, answer_vector, embed_model = embedding
    try:
        with write_transaction(ctx.conn):
            if ctx.mode is CacheMode.REFRESH:
                _label_refreshed_hit(ctx, request)  # before the store replaces the answer the label is about
            if cacheable:
                entry_id = cache.store(
                    ctx.conn,
                    request,
                    completion,
                    cost=cost,
                    vector=vector,
                    embed_model=embed_model,
                    answer_vector=answer_vector,
                )
            episode.entry_id = entry_id
            episode_id = memory.insert(ctx.conn, episode)
    except StoreError as exc:
        ctx.on_warning(f"the answer was not saved (not cached, no episode): {exc}")
        return None, None
    return entry_id, episode_id


def _index_new_entry(ctx: AskContext) -> None:
    from aicache.semantic import tier

    try:
        tier.index_new_entries(ctx.conn, ctx.settings)
    except AicacheError as exc:
        # SQLite holds the vector; the next run catches the index up from its watermark.
        ctx.on_note(f"vector index not updated now ({exc}); it will catch up on the next run")
