"""Fixtures shared by every test.

Every test gets its own ``AICACHE_HOME`` under ``tmp_path`` and a clean provider environment, and any attempt
to open a socket to a non-loopback address fails loudly: tests talk only to servers on 127.0.0.1. In this
process a guard on ``socket.connect`` refuses it; subprocesses (aicache, hooks, helpers) inherit proxy variables
that name a loopback port nothing listens on, with loopback exempt, so their HTTP clients fail at once with a
connection refused there instead of reaching the internet.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OLLAMA_HOST",
    "OPENAI_BASE_URL",
    "AICACHE_MODEL",
    "AICACHE_PROVIDER",
    "AICACHE_DEBUG",
    "NO_COLOR",
)


# Bound and never listening, for the whole session: a connection to it is refused, and no other process can
# take the port and answer in its place.
_NO_PROXY_HERE = socket.socket()
_NO_PROXY_HERE.bind(("127.0.0.1", 0))
CLOSED_PROXY = f"http://127.0.0.1:{_NO_PROXY_HERE.getsockname()[1]}"
NETWORK_ENV = {
    **{name: CLOSED_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
    **{name.lower(): CLOSED_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
    "NO_PROXY": "127.0.0.1,localhost,::1",
    "no_proxy": "127.0.0.1,localhost,::1",
}


@pytest.fixture(autouse=True)
def aicache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "aicache-home"
    monkeypatch.setenv("AICACHE_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # Commands run in-process unless a test is about the warm helper (tests/test_helper.py turns it on).
    monkeypatch.setenv("AICACHE_HELPER", "0")
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in NETWORK_ENV.items():  # inherited by every subprocess a test starts
        monkeypatch.setenv(name, value)
    return home


def _loopback_only(address: object) -> None:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        host = address[0]
        if host == "localhost":
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
        raise RuntimeError(f"test tried to reach {host}: tests may only talk to 127.0.0.1")


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    original = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _loopback_only(address)
        return original(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def conn(aicache_home: Path) -> Iterator[sqlite3.Connection]:
    """A connection to this test's store (created and migrated)."""
    from aicache import db

    connection = db.connect()
    yield connection
    connection.close()


@pytest.fixture
def fake_llm() -> Iterator[object]:
    """A real HTTP server on 127.0.0.1 speaking the OpenAI and Anthropic wire formats (see fakellm.py)."""
    from tests.fakellm import FakeLLM

    server = FakeLLM()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for running ``aicache`` in a subprocess: this test's home, no provider keys, no internet."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    env.update(NETWORK_ENV)
    env["AICACHE_HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


AICACHE = [sys.executable, "-m", "aicache"]
