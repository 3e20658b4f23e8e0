"""The ``ask`` flow: exact tier, semantic tier, provider, store, episode.

    request -> exact lookup (SQLite, no model) -> semantic lookup (only if the partition has vectors)
            -> hit: replay the answer through ``on_text``     miss: the provider streams through ``on_text``
            -> complete answers only are stored -> one episode, always (hit, miss, error, interrupt)

The semantic tier, numpy, onnxruntime and httpx are imported only when the flow reaches them, so an exact hit
pays for none of them. Nothing here prints: notes for the user go to ``on_note``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from aicache import cache, memory
from aicache.cachekeys import content_hash
from aicache.config import Settings
from aicache.db import write_transaction
from aicache.errors import AicacheError, CacheMissError, ProviderError, StoreError
from aicache.hooks.gitinfo import repo_and_head
from aicache.providers.base import Completion, TextSink
from aicache.request import AskRequest

NoteSink = Callable[[str], None]


class CacheMode(StrEnum):
    NORMAL = "normal"
    NO_CACHE = "no_cache"  # neither read nor write the cache (the episode is still recorded)
    REFRESH = "refresh"  # ask the provider again and replace the entry
    CACHE_ONLY = "cache_only"  # never call a provider


@dataclass(frozen=True)
class AskResult:
    answer: str
    outcome: str
    episode_id: int
    entry_id: int | None
    provider: str
    model: str
    similarity: float | None = None
    threshold: float | None = None
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    cached: bool = False  # whether the answer is now in the cache


@dataclass
class _Semantic:
    """What the semantic tier said about this request, kept for the episode and for storing a new entry."""

    entry_id: int | None = None
    similarity: float | None = None
    threshold: float | None = None
    verdicts: list[dict[str, Any]] | None = None
    vector: bytes | None = None


@dataclass
class AskContext:
    settings: Settings
    conn: sqlite3.Connection
    api_key: str | None = None
    stream: bool = True
    mode: CacheMode = CacheMode.NORMAL
    source: str = "cli"
    cwd: Path = field(default_factory=Path.cwd)
    on_note: NoteSink = lambda _note: None
    announced_export: bool = False


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
        outcome="error",
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
    episode.answer = entry.answer
    episode.entry_id = entry.id
    episode.latency_ms = (time.perf_counter() - started) * 1000
    try:
        with write_transaction(ctx.conn):
            cache.note_hit(ctx.conn, entry.id)
            episode_id = memory.insert(ctx.conn, episode)
    except StoreError as exc:
        # The answer is already shown; a read-only or locked store must not turn a hit into a failure.
        ctx.on_note(f"served from the cache, but the episode was not recorded: {exc}")
        episode_id = 0
    return AskResult(
        answer=entry.answer,
        outcome=episode.outcome,
        episode_id=episode_id,
        entry_id=entry.id,
        provider=request.provider,
        model=entry.model or request.model,
        similarity=episode.similarity,
        threshold=episode.threshold,
        latency_ms=episode.latency_ms,
        tokens_in=entry.tokens_in,
        tokens_out=entry.tokens_out,
        cached=True,
    )


def _announce_model_export(ctx: AskContext) -> None:
    """The first semantic use exports the embedding model to ONNX (~15 s, once): say so before the wait."""
    from aicache.semantic import embeddings

    if not ctx.announced_export and not embeddings.is_prepared(ctx.settings):
        ctx.announced_export = True
        ctx.on_note("preparing the embedding model for the semantic tier (one time, about 15 s)")


def _semantic_lookup(request: AskRequest, ctx: AskContext) -> _Semantic:
    if not ctx.settings.get("cache.semantic", True):
        return _Semantic()
    from aicache.semantic import tier

    _announce_model_export(ctx)

    try:
        result = tier.lookup(ctx.conn, ctx.settings, request.partition_key, request.question)
    except AicacheError as exc:
        # The semantic tier is an optimisation: if it cannot run, the question is still answered.
        ctx.on_note(f"semantic tier skipped: {exc}")
        return _Semantic()
    if result.rebuilt_index:
        ctx.on_note("the vector index was missing or damaged and has been rebuilt from the database")
    return _Semantic(result.entry_id, result.similarity, result.threshold, result.verdicts, result.vector)


def _call_provider(
    request: AskRequest, ctx: AskContext, on_text: TextSink, started: float
) -> tuple[Completion, float | None]:
    from aicache.providers import get_provider
    from aicache.providers.base import ProviderRequest

    first_byte: list[float] = []

    def sink(text: str) -> None:
        if not first_byte:
            first_byte.append((time.perf_counter() - started) * 1000)
        on_text(text)

    provider_request = ProviderRequest(
        model=request.model,
        messages=request.messages(),
        system=request.effective_system,
        params=request.params,
        stream=ctx.stream,
        base_url=request.base_url,
        api_key=ctx.api_key,
        http=ctx.settings.http,
    )
    completion = get_provider(request.provider).complete(provider_request, sink)
    return completion, (first_byte[0] if first_byte else None)


def _vector_for_store(request: AskRequest, ctx: AskContext, found: _Semantic) -> tuple[bytes | None, str | None]:
    if not ctx.settings.get("cache.semantic", True):
        return None, None
    from aicache.semantic import tier

    _announce_model_export(ctx)
    try:
        vector = found.vector or tier.embed_question(ctx.settings, request.question)
        return vector, tier.model_id(ctx.settings)
    except AicacheError as exc:
        ctx.on_note(f"answer cached for exact repeats only: {exc}")
        return None, None


def _record_failure(ctx: AskContext, episode: memory.Episode, error: str, partial: str, started: float) -> None:
    episode.outcome = "error"
    episode.error = error
    episode.answer = partial or None
    episode.latency_ms = (time.perf_counter() - started) * 1000
    try:
        memory.record(ctx.conn, episode)
    except AicacheError as exc:
        ctx.on_note(f"could not record the failed episode: {exc}")


def ask(request: AskRequest, ctx: AskContext, on_text: TextSink) -> AskResult:
    """Answer ``request`` from the cache or the provider; ``on_text`` receives the answer as it comes."""
    started = time.perf_counter()
    episode = _base_episode(request, ctx)
    found = _Semantic()
    if ctx.mode in (CacheMode.NORMAL, CacheMode.CACHE_ONLY):
        entry = cache.lookup_exact(ctx.conn, request.exact_key)
        if entry is not None:
            episode.outcome = "exact_hit"
            _replay(entry.answer, ctx.stream, on_text)
            return _serve_hit(request, ctx, episode, entry, started)
        found = _semantic_lookup(request, ctx)
        episode.similarity, episode.threshold, episode.verdicts = (
            found.similarity,
            found.threshold,
            found.verdicts,
        )
        hit = cache.get_entry(ctx.conn, found.entry_id) if found.entry_id is not None else None
        if hit is not None:
            episode.outcome = "semantic_hit"
            _replay(hit.answer, ctx.stream, on_text)
            return _serve_hit(request, ctx, episode, hit, started)
    if ctx.mode is CacheMode.CACHE_ONLY:
        episode.outcome = "cache_miss"
        episode.latency_ms = (time.perf_counter() - started) * 1000
        memory.record(ctx.conn, episode)
        raise CacheMissError("not in the cache (--cache-only)")
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

    def collect(text: str) -> None:
        shown.append(text)
        on_text(text)

    try:
        completion, ttfb = _call_provider(request, ctx, collect, started)
    except ProviderError as exc:
        _record_failure(ctx, episode, str(exc), exc.partial or "".join(shown), started)
        raise
    except KeyboardInterrupt:
        _record_failure(ctx, episode, "interrupted", "".join(shown), started)
        raise
    cost = cache.price(
        ctx.settings.get("prices", {}),
        completion.model or request.model,
        completion.tokens_in,
        completion.tokens_out,
    )
    cacheable = completion.complete and ctx.mode is not CacheMode.NO_CACHE
    vector, embed_model = _vector_for_store(request, ctx, found) if cacheable else (None, None)
    episode.outcome = {CacheMode.REFRESH: "refresh", CacheMode.NO_CACHE: "bypass"}.get(ctx.mode, "miss")
    episode.answer = completion.text
    episode.ttfb_ms = ttfb
    episode.tokens_in, episode.tokens_out, episode.cost = completion.tokens_in, completion.tokens_out, cost
    if not completion.complete:
        episode.error = f"incomplete answer (finish reason {completion.finish_reason}); not cached"
        ctx.on_note(f"the answer was cut short (finish reason {completion.finish_reason}); not cached")
    entry_id = None
    with write_transaction(ctx.conn):
        if cacheable:
            entry_id = cache.store(ctx.conn, request, completion, cost=cost, vector=vector, embed_model=embed_model)
        episode.entry_id = entry_id
        episode.latency_ms = (time.perf_counter() - started) * 1000
        episode_id = memory.insert(ctx.conn, episode)
        if ctx.mode is CacheMode.REFRESH:
            memory.mark_last_hit_wrong(ctx.conn, request.partition_key, request.question, episode_id)
    if entry_id is not None and vector is not None:
        _index_new_entry(ctx)
    return AskResult(
        answer=completion.text,
        outcome=episode.outcome,
        episode_id=episode_id,
        entry_id=entry_id,
        provider=request.provider,
        model=completion.model or request.model,
        latency_ms=episode.latency_ms,
        ttfb_ms=ttfb,
        tokens_in=completion.tokens_in,
        tokens_out=completion.tokens_out,
        cost=cost,
        cached=entry_id is not None,
    )


def _index_new_entry(ctx: AskContext) -> None:
    from aicache.semantic import tier

    try:
        tier.index_new_entries(ctx.conn, ctx.settings)
    except AicacheError as exc:
        # SQLite holds the vector; the next run catches the index up from its watermark.
        ctx.on_note(f"vector index not updated now ({exc}); it will catch up on the next run")
