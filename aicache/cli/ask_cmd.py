"""``aicache ask``: the one command on the hot path. Keep its imports light."""

from __future__ import annotations

import sys
from collections.abc import Callable
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


def _params(options: list[str], temperature: float | None, max_tokens: int | None) -> list[tuple[str, float | int]]:
    """The sampling parameters, each checked here so a bad one is refused as the option the user typed."""
    from aicache.api import param_problem

    given = [(_parse_option(o), "-o/--option") for o in options]
    if temperature is not None:
        given.append((("temperature", temperature), "--temperature"))
    if max_tokens is not None:
        given.append((("max_tokens", max_tokens), "--max-tokens"))
    for (name, value), hint in given:
        if problem := param_problem(name, value):
            raise typer.BadParameter(f"{name} {problem}", param_hint=hint)
    return [pair for pair, _hint in given]


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
    quiet: bool = typer.Option(False, "--quiet", help="No notes on stderr (warnings and errors still show)."),
) -> None:
    """Ask a question, answered from the cache when it can be."""
    from aicache import config
    from aicache.api import ask as library_ask

    if quiet:
        output.set_quiet(True)
    settings = config.load()
    for warning in settings.warnings:
        output.warn(warning)
    params = _params(option or [], temperature, max_tokens)
    stdin = _read_stdin(no_stdin, int(settings.get("limits.max_input_bytes", 1_000_000)))

    def run(
        on_text: Callable[[str], None],
        on_note: Callable[[str], None] = output.note,
        on_warning: Callable[[str], None] = output.warn,
    ) -> AskResult:
        # The library's entry point, so the command and ``aicache.ask`` cannot drift apart.
        return library_ask(
            " ".join(question or []),
            model=model,
            provider=provider,
            base_url=base_url,
            system=system,
            template=template,
            params=params,
            input_text=stdin,
            attachments=attach or (),
            key=key,
            mode=_mode(no_cache, refresh, cache_only),
            stream=stream,
            on_text=on_text,
            on_note=on_note,
            on_warning=on_warning,
            settings=settings,
            source="cli",
        )

    if json_out:
        result = run(lambda _text: None)
        output.emit_json({"answer": result.answer, **_result_fields(result)})
        return
    # A note or warning that comes while the answer streams waits for its end. A reader of stdout that has gone
    # (`| head`) does not stop the ask: the writer says so (BrokenPipeError) only once the answer is stored and noted.
    with output.AnswerWriter() as writer:
        run(writer.write, writer.note, writer.warn)


def _result_fields(result: AskResult) -> dict[str, object]:
    """The --json fields besides the answer: the library's ``AskResult`` as it is (see the README)."""
    from dataclasses import asdict

    fields = asdict(result)
    fields.pop("answer", None)
    return fields


def register(app: typer.Typer) -> None:
    app.command()(ask)
