"""``aicache ask``: the one command on the hot path. Keep its imports light."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from aicache import output

if TYPE_CHECKING:
    from aicache.flow import AskResult  # the module itself is imported only when a command runs


def _parse_option(text: str) -> tuple[str, float | int]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise typer.BadParameter(f"expected NAME=VALUE, got {text!r}", param_hint="-o/--option")
    try:
        number: float | int = int(value) if value.lstrip("-").isdigit() else float(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be a number, got {value!r}", param_hint="-o/--option") from None
    return name.strip(), number


def _read_stdin(no_stdin: bool, limit: int) -> bytes | None:
    if no_stdin or sys.stdin is None or sys.stdin.closed or sys.stdin.isatty():
        return None
    from aicache.inputs import read_limited

    return read_limited(sys.stdin.buffer, limit)


def _mode(no_cache: bool, refresh: bool, cache_only: bool) -> str:
    chosen = [name for name, on in (("no_cache", no_cache), ("refresh", refresh), ("cache_only", cache_only)) if on]
    if len(chosen) > 1:
        raise typer.BadParameter("--no-cache, --refresh and --cache-only exclude each other")
    return chosen[0] if chosen else "normal"


def _outcome_note(result: AskResult) -> str:
    if result.outcome == "exact_hit":
        return "cache: exact hit"
    if result.outcome == "semantic_hit":
        return f"cache: semantic hit ({result.similarity:.2f})"
    stored = "stored" if result.cached else "not stored"
    return f"cache: {result.outcome.replace('_', ' ')} ({stored})"


def ask(
    question: list[str] = typer.Argument(None, help="The question. Piped stdin is added as input."),
    model: str = typer.Option(None, "-m", "--model", help="Model name or alias (env AICACHE_MODEL)."),
    provider: str = typer.Option(None, "-p", "--provider", help="openai, anthropic, ollama or command."),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint (env OPENAI_BASE_URL)."),
    key: str = typer.Option(None, "--key", help="API key for this call (overrides key file and env)."),
    system: str = typer.Option(None, "-s", "--system", help="System prompt."),
    template: str = typer.Option(None, "-t", "--template", help="Prompt template, e.g. commit-message."),
    attach: list[Path] = typer.Option(None, "-a", "--attach", help="Attach a file's text (repeatable)."),
    option: list[str] = typer.Option(None, "-o", "--option", help="Sampling parameter NAME=VALUE."),
    temperature: float = typer.Option(None, "--temperature", help="Sampling temperature."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Maximum tokens in the answer."),
    stream: bool = typer.Option(None, "--stream/--no-stream", help="Stream the answer (default: on)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    refresh: bool = typer.Option(False, "--refresh", help="Ask again, replace the entry; marks a hit wrong."),
    cache_only: bool = typer.Option(False, "--cache-only", help="Never call a provider; exit 4 on a miss."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of the answer."),
    no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not read piped stdin."),
) -> None:
    """Ask a question, answered from the cache when it can be."""
    from aicache import config, db
    from aicache.flow import AskContext, CacheMode
    from aicache.flow import ask as run_ask
    from aicache.prepare import RawAsk, prepare

    settings = config.load()
    params = [_parse_option(o) for o in option or []]
    params += [(n, v) for n, v in (("temperature", temperature), ("max_tokens", max_tokens)) if v is not None]
    raw = RawAsk(
        question=" ".join(question or []),
        stdin=_read_stdin(no_stdin, int(settings.get("limits.max_input_bytes", 1_000_000))),
        attachments=tuple(attach or ()),
        model=model,
        provider=provider,
        base_url=base_url,
        system=system,
        template=template,
        params=tuple(params),
        key=key,
    )
    prepared = prepare(raw, settings)
    for warning in prepared.warnings:
        output.warn(warning)
    ctx = AskContext(
        settings=settings,
        conn=db.connect(),
        api_key=prepared.api_key,
        stream=settings.get("stream", True) if stream is None else stream,
        mode=CacheMode(_mode(no_cache, refresh, cache_only)),
        on_note=output.note,
    )
    if json_out:
        result = run_ask(prepared.request, ctx, lambda _text: None)
        output.emit_json({"answer": result.answer, **_result_fields(result)})
        return
    with output.AnswerWriter() as writer:
        result = run_ask(prepared.request, ctx, writer.write)
    output.note(_outcome_note(result))


def _result_fields(result: AskResult) -> dict[str, object]:
    from dataclasses import asdict

    fields = asdict(result)
    fields.pop("answer", None)
    return fields


def register(app: typer.Typer) -> None:
    app.command()(ask)
