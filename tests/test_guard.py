"""The suite's own guard: nothing a test starts reaches the internet, in this process or in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AICACHE, cli_env


def test_this_process_cannot_connect_outside_loopback() -> None:
    with socket.socket() as sock, pytest.raises(RuntimeError, match=r"tests may only talk to 127\.0\.0\.1"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed, and never tried


def test_a_subprocess_http_client_is_refused_at_the_closed_proxy(aicache_home: Path) -> None:
    script = "import urllib.request; urllib.request.urlopen('https://example.com/', timeout=30)"
    done = subprocess.run(
        [sys.executable, "-c", script], env=cli_env(aicache_home), capture_output=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert b"Connection refused" in done.stderr


def test_aicache_in_a_subprocess_never_reaches_the_real_provider(aicache_home: Path) -> None:
    aicache_home.mkdir(parents=True, exist_ok=True)
    (aicache_home / "config.toml").write_text("[cache]\nsemantic = false\n[http]\nretries = 0\n")
    env = cli_env(aicache_home, OPENAI_API_KEY="sk-test-0123456789abcdef")  # default base URL: api.openai.com
    done = subprocess.run([*AICACHE, "ask", "hello"], env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 3
    assert b"cannot connect to api.openai.com" in done.stderr and b"Connection refused" in done.stderr
