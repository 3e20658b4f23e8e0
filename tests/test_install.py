"""``make install``'s choice of PyTorch build (tools/install_torch.py), run as a real process.

The CPU index is stood in for by a real HTTP server on 127.0.0.1 and a GPU by an ``nvidia-smi`` on PATH; the
dry run against the real indexes is ``make check-install``, which CI runs.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "tools" / "install_torch.py"


class _Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def cpu_index() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
    finally:
        server.shutdown()
        server.server_close()


def closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/whl/cpu"


def plan(index: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TORCH_CPU_INDEX": index, "TORCH_VERSION": "2.13.0", "PATH": path}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--plan"], env=env, capture_output=True, text=True, timeout=60, check=True
    )


@pytest.fixture
def path_without_gpu(tmp_path: Path) -> str:
    """PATH without any nvidia-smi (this machine has none; a developer's may)."""
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "nvidia-smi").exists()]
    return os.pathsep.join(dirs)


def test_without_a_gpu_torch_comes_from_the_cpu_index(cpu_index: str, path_without_gpu: str) -> None:
    done = plan(cpu_index, path_without_gpu)
    assert done.stdout.split() == ["pip", "install", "--index-url", cpu_index, "torch==2.13.0"]
    assert "the CPU build" in done.stderr


def test_an_unreachable_cpu_index_falls_back_to_the_registry(path_without_gpu: str) -> None:
    index = closed_url()
    done = plan(index, path_without_gpu)
    assert done.stdout.split() == ["pip", "install", "torch==2.13.0"]
    assert f"{index} cannot be reached" in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_gpu_machine_gets_the_registry_build(cpu_index: str, path_without_gpu: str, tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (tools / "nvidia-smi").chmod(0o755)
    done = plan(cpu_index, f"{tools}{os.pathsep}{path_without_gpu}")
    assert done.stdout.split() == ["pip", "install", "torch==2.13.0"]
    assert "nvidia-smi found" in done.stderr
