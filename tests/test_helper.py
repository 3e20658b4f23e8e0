"""The warm helper: `aicache ask` handed to a forked child of a background process (aicache/helper).

Every test here runs the real console path (``python -m aicache``) against a real helper process listening on a
real Unix socket, and checks that the result is what the in-process run gives: stdout, stderr, exit code,
episodes, signals. The helper must also get out of the way: killed, stale, turned off.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aicache.helper import client, server, wire
from tests.conftest import AICACHE, cli_env
from tests.fakellm import FakeLLM, Reply
from tests.test_cli import (
    INTERRUPTIONS,
    assert_a_closed_pipe_loses_no_answer,
    assert_an_interrupted_json_ask_says_so,
    assert_ctrl_c_while_streaming_exits_130_and_stores_nothing,
    rows,
)
from tests.test_semantic import export_run, model_home, onnx_models  # noqa: F401  (session model fixtures)

pytestmark = pytest.mark.slow


def aicache(env: dict[str, str], *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*AICACHE, *args], env=env, capture_output=True, timeout=120, **kw)


def helper_status(env: dict[str, str]) -> dict[str, Any]:
    out = aicache(env, "helper", "status", "--json")
    assert out.returncode == 0, out.stderr
    status: dict[str, Any] = json.loads(out.stdout)["helper"]
    return status


def wait_for(condition: Any, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def helper_processes(env: dict[str, str]) -> list[int]:
    """Helper processes of this test's store, starting or running (a cold ask spawns one before it exits)."""
    home = f"AICACHE_HOME={env['AICACHE_HOME']}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # gone since the listing, or not ours to read
                cmdline, environ = (entry / "cmdline").read_bytes(), (entry / "environ").read_bytes()
                if b"aicache.helper.server" in cmdline and home in environ.split(b"\0"):
                    found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def env(aicache_home: Path, fake_llm: FakeLLM) -> Iterator[dict[str, str]]:
    """This test's home with the helper allowed; whatever helper the test leaves is stopped afterwards."""
    aicache_home.mkdir(parents=True, exist_ok=True)
    config = aicache_home / "config.toml"
    if not config.exists():
        config.write_text("[cache]\nsemantic = false\n[helper]\nidle_minutes = 2\n[http]\nretries = 0\n")
    environment = cli_env(
        aicache_home, AICACHE_HELPER="1", OPENAI_BASE_URL=fake_llm.openai_url, OPENAI_API_KEY="sk-test-0123456789"
    )
    yield environment
    stop_and_clean_up(environment)


def stop_and_clean_up(environment: dict[str, str]) -> None:
    """Stop this test's helper, wait until it is gone, and remove its lock and log files."""
    status = helper_status(environment)
    aicache(environment, "helper", "stop")
    if status["running"]:
        wait_for(lambda: gone(status["pid"]), 10)
    socket_path = wire.socket_path()  # this test's store: AICACHE_HOME is this test's here too
    assert socket_path is not None
    for suffix in (".lock", ".log"):
        Path(wire.companion(socket_path, suffix)).unlink(missing_ok=True)


@pytest.fixture
def warm(env: dict[str, str]) -> dict[str, str]:
    started = aicache(env, "helper", "start")
    assert started.returncode == 0, started.stderr
    assert helper_status(env)["running"]
    return env


def test_helper_start_and_stop_print_json_and_a_second_start_says_already_running(env: dict[str, str]) -> None:
    started = aicache(env, "helper", "start", "--json")  # used to be "No such option: --json" (exit 2)
    assert started.returncode == 0, started.stderr
    pid = helper_status(env)["pid"]
    assert json.loads(started.stdout)["helper"] == {"state": "started", "pid": pid}
    again = aicache(env, "helper", "start")
    assert again.returncode == 0 and "helper already running: pid" in again.stderr.decode()
    assert json.loads(aicache(env, "helper", "start", "--json").stdout)["helper"]["state"] == "already running"
    stopped = aicache(env, "helper", "stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["helper"] == {"state": "stopped", "pid": pid}
    wait_for(lambda: gone(pid), 10)
    assert json.loads(aicache(env, "helper", "stop", "--json").stdout)["helper"] == {
        "state": "not running",
        "pid": None,
    }


def test_ask_through_the_helper_behaves_like_in_process(
    warm: dict[str, str], fake_llm: FakeLLM, aicache_home: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "some project"
    workdir.mkdir()
    fake_llm.enqueue(Reply.text("git reset --soft HEAD~1"))
    miss = aicache(warm, "ask", "how do I undo the last commit", cwd=workdir)
    hit = aicache(warm, "ask", "how do I undo the last commit", cwd=workdir)
    assert (miss.returncode, miss.stdout) == (0, b"git reset --soft HEAD~1\n"), miss.stderr
    assert (hit.returncode, hit.stdout) == (0, b"git reset --soft HEAD~1\n"), hit.stderr
    assert b"cache: miss" in miss.stderr and b"cache: exact hit" in hit.stderr
    assert helper_status(warm)["served"] == 2  # both ran in the helper, not in-process
    episodes = rows(aicache_home, "SELECT cwd, outcome FROM episodes ORDER BY id")
    assert episodes == [(str(workdir), "miss"), (str(workdir), "exact_hit")]
    assert len(fake_llm.requests) == 1


def test_the_client_of_a_warm_helper_imports_almost_nothing(warm: dict[str, str], fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("an answer"))
    assert aicache(warm, "ask", "q").returncode == 0
    traced = subprocess.run(
        [AICACHE[0], "-X", "importtime", *AICACHE[1:], "ask", "q"], env=warm, capture_output=True, timeout=60
    )
    assert traced.stdout == b"an answer\n", traced.stderr
    imported = {line.split("|")[-1].strip() for line in traced.stderr.decode().splitlines() if "import time:" in line}
    assert {"aicache.launch", "aicache.helper.client", "aicache.helper.wire"} <= imported
    heavy = {"typer", "aicache.cli", "aicache.flow", "httpx", "numpy", "onnxruntime", "sqlite3", "json", "typing"}
    assert not imported & heavy
    assert helper_status(warm)["served"] == 2


def test_exit_codes_stdin_and_environment_pass_through(warm: dict[str, str], fake_llm: FakeLLM) -> None:
    assert aicache(warm, "ask", "--cache-only", "never asked").returncode == 4
    assert aicache(warm, "ask").returncode == 2  # nothing to ask
    fake_llm.enqueue(Reply.status(401, "bad key"))
    failed = aicache(warm, "ask", "who am I")
    assert failed.returncode == 3 and b"401" in failed.stderr and b"sk-test" not in failed.stderr
    fake_llm.enqueue(Reply.text("a summary"))
    piped = aicache(warm, "ask", "summarise", input=b"the piped text")
    assert piped.stdout == b"a summary\n"
    assert "the piped text" in json.dumps(fake_llm.requests[-1].body)
    # The helper's own environment does not leak in: this run's model and key are the ones sent.
    fake_llm.enqueue(Reply.text("ok"))
    aicache({**warm, "AICACHE_MODEL": "model-from-env", "OPENAI_API_KEY": "sk-other-0123456789"}, "ask", "q")
    assert fake_llm.requests[-1].body["model"] == "model-from-env"
    assert fake_llm.requests[-1].headers["authorization"] == "Bearer sk-other-0123456789"
    assert helper_status(warm)["served"] == 5


def test_ctrl_c_reaches_the_command(warm: dict[str, str], fake_llm: FakeLLM, aicache_home: Path) -> None:
    assert_ctrl_c_while_streaming_exits_130_and_stores_nothing(aicache_home, fake_llm, warm)
    assert helper_status(warm)["served"] == 1  # it ran in the helper, and the signal got there


@pytest.mark.parametrize(("signum", "code", "error"), INTERRUPTIONS)
def test_an_interrupted_json_ask_says_so_through_the_helper(
    warm: dict[str, str], fake_llm: FakeLLM, aicache_home: Path, signum: int, code: int, error: str
) -> None:
    assert_an_interrupted_json_ask_says_so(aicache_home, fake_llm, warm, signum, code, error)
    assert helper_status(warm)["served"] == 1  # it ran in the helper, which is still there to serve the next


def test_a_closed_pipe_loses_no_answer_through_the_helper(
    warm: dict[str, str], fake_llm: FakeLLM, aicache_home: Path
) -> None:
    assert_a_closed_pipe_loses_no_answer(aicache_home, fake_llm, warm)
    assert helper_status(warm)["served"] == 2  # the closed pipe's ask and the --cache-only one ran in the helper


def on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, bytes]:
    """Run with stdout on a pseudo-terminal (80 columns); return the exit code and what the terminal got."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([*AICACHE, *args], env=env, stdout=terminal, stderr=subprocess.DEVNULL)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return proc.wait(timeout=60), shown


def test_a_terminal_gets_the_same_rendering(warm: dict[str, str], fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("# Title\n\nSome **bold** text and `code`."))
    assert aicache(warm, "ask", "render me").returncode == 0
    code, through_helper = on_a_terminal(warm, "ask", "render me")
    in_process = on_a_terminal({**warm, "AICACHE_HELPER": "0"}, "ask", "render me")
    assert (code, in_process[0]) == (0, 0)
    # The same styled text (how often the live display redraws depends on timing, so not byte for byte).
    for shown in (through_helper, in_process[1]):
        assert b"\x1b[1;4mTitle\x1b[0m" in shown and b"\x1b[1mbold\x1b[0m" in shown
        assert b"**bold**" not in shown
    assert helper_status(warm)["served"] == 2


def test_a_killed_helper_is_replaced_and_no_command_is_lost(warm: dict[str, str], fake_llm: FakeLLM) -> None:
    first = helper_status(warm)["pid"]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: gone(first), 10)
    fake_llm.enqueue(Reply.text("still answered"))
    answered = aicache(warm, "ask", "after the crash")  # a dead socket file: runs in-process, starts a new helper
    assert (answered.returncode, answered.stdout) == (0, b"still answered\n"), answered.stderr
    replacement = wait_for(lambda: helper_status(warm).get("pid"))
    assert replacement != first
    assert aicache(warm, "ask", "after the crash").stdout == b"still answered\n"
    assert helper_status(warm)["served"] == 1


def test_turned_off_in_config_the_helper_stops_and_none_starts(warm: dict[str, str], fake_llm: FakeLLM) -> None:
    pid = helper_status(warm)["pid"]
    assert aicache(warm, "config", "set", "helper.enabled", "false").returncode == 0
    fake_llm.enqueue(Reply.text("in-process"))
    answered = aicache(warm, "ask", "q")
    assert answered.stdout == b"in-process\n", answered.stderr
    wait_for(lambda: gone(pid), 60)
    # A helper the run started would still run (it idles for minutes): wait until none of this store's does.
    wait_for(lambda: not helper_processes(warm), 60)
    assert not helper_status(warm)["running"]
    refused = aicache(warm, "helper", "start")
    assert refused.returncode == 5 and b"helper.enabled = false" in refused.stderr


def test_aicache_helper_0_never_starts_one(env: dict[str, str], fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("a"))
    off = {**env, "AICACHE_HELPER": "0"}
    assert aicache(off, "ask", "q").returncode == 0
    wait_for(lambda: not helper_processes(env), 60)
    assert not helper_status(env)["running"]
    assert aicache(off, "helper", "start").returncode == 5


def test_a_cold_ask_starts_a_helper_for_the_next_one(env: dict[str, str], fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("a"))
    assert aicache(env, "ask", "q").returncode == 0
    wait_for(lambda: helper_status(env)["running"])
    assert aicache(env, "ask", "q").stdout == b"a\n"
    assert helper_status(env)["served"] == 1


def test_eight_clients_at_once(warm: dict[str, str], fake_llm: FakeLLM, aicache_home: Path) -> None:
    fake_llm.enqueue(*[Reply.text(f"answer {i}") for i in range(8)])
    procs = [
        subprocess.Popen([*AICACHE, "ask", f"question {i}"], env=warm, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(8)
    ]
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, results
    assert rows(aicache_home, "SELECT COUNT(*) FROM episodes WHERE outcome = 'miss'") == [(8,)]
    assert helper_status(warm)["served"] == 8


def test_garbage_on_the_socket_does_not_hurt_the_helper(warm: dict[str, str], fake_llm: FakeLLM) -> None:
    path = helper_status(warm)["socket"]
    for garbage in (b"", b"\x00\x00\x00\x05hello", b"\xff" * 100):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            sock.sendall(garbage)
    fake_llm.enqueue(Reply.text("fine"))
    assert aicache(warm, "ask", "q").stdout == b"fine\n"
    assert helper_status(warm)["served"] == 1


def semantic_env(home: Path, fake_llm: FakeLLM, config: str) -> dict[str, str]:
    """A home with the exported model, the semantic tier on, and the helper allowed."""
    # The rules accept these pairs; the trained decision is measured on labelled sets (test_evaluate.py).
    (home / "config.toml").write_text(config + '[helper]\nidle_minutes = 2\n[decision]\nkind = "rules"\n')
    return cli_env(home, AICACHE_HELPER="1", OPENAI_BASE_URL=fake_llm.openai_url, OPENAI_API_KEY="sk-test-0123456789")


def test_semantic_hit_through_the_helper(
    model_home: Path,  # noqa: F811
    fake_llm: FakeLLM,
) -> None:
    environment = semantic_env(model_home, fake_llm, "")
    try:
        assert aicache(environment, "helper", "start").returncode == 0
        fake_llm.enqueue(Reply.text("git reset --soft HEAD~1"))
        assert aicache(environment, "ask", "how do I undo my last commit but keep the changes").returncode == 0
        hit = aicache(environment, "ask", "how can I undo the last commit and keep my changes")
        assert hit.stdout == b"git reset --soft HEAD~1\n" and b"semantic hit" in hit.stderr, hit.stderr
        refused = aicache(environment, "ask", "how do I undo my last commit and discard the changes", "--cache-only")
        assert refused.returncode == 4, refused.stderr
        assert helper_status(environment)["served"] == 3
    finally:
        stop_and_clean_up(environment)


def test_the_helper_keeps_a_large_index_warm_and_its_children_catch_up(
    model_home: Path,  # noqa: F811
    fake_llm: FakeLLM,
) -> None:
    # exact_scan_max = 2: a partition of three entries is searched through the index, as 2,000 would be.
    environment = semantic_env(model_home, fake_llm, "[cache]\nexact_scan_max = 2\n")
    cold = {**environment, "AICACHE_HELPER": "0"}
    try:
        for question in ("how do I rename a git branch", "delete a git tag", "list docker images on this host"):
            fake_llm.enqueue(Reply.text(f"answer: {question}"))
            assert aicache(cold, "ask", question).returncode == 0
        assert aicache(environment, "helper", "start").returncode == 0
        assert helper_status(environment)["index_vectors"] == 3  # loaded before the first command
        fake_llm.enqueue(Reply.text("answer: undo the last commit"))
        assert aicache(cold, "ask", "how do I undo my last commit but keep the changes").returncode == 0  # not seen
        hit = aicache(environment, "ask", "how can I undo the last commit and keep my changes")
        assert hit.stdout == b"answer: undo the last commit\n" and b"semantic hit" in hit.stderr, hit.stderr
        assert wait_for(lambda: helper_status(environment)["index_vectors"] == 4, 10)
        assert b"holds the vector index (4 vectors)" in aicache(environment, "helper", "status").stdout
        again = aicache(environment, "ask", "show every docker image on this host")
        assert again.stdout == b"answer: list docker images on this host\n", again.stderr
    finally:
        stop_and_clean_up(environment)


# ---------------------------------------------------------------------------------------------------------
# The parts, in-process


def test_code_stamp_changes_when_a_file_changes(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    before = server.code_stamp(str(package))
    (package / "__pycache__" / "a.cpython.pyc").write_bytes(b"compiled")
    assert server.code_stamp(str(package)) == before  # bytecode caches are not code changes
    (package / "a.py").write_text("x = 22\n")
    assert server.code_stamp(str(package)) != before


def test_code_stamp_sees_a_same_size_edit_with_the_mtime_put_back(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    module = package / "a.py"
    module.write_text("x = 1\n")
    before = server.code_stamp(str(package))
    old = module.stat()
    # The kernel's file clock ticks every few ms: wait until a new write would get a later ctime, as any real
    # edit made after the helper started does.
    probe = tmp_path / "probe"
    wait_for(lambda: probe.write_text("tick") and probe.stat().st_ctime_ns > old.st_ctime_ns, 5)
    module.write_text("x = 2\n")  # same size
    os.utime(module, ns=(old.st_atime_ns, old.st_mtime_ns))  # and the modification time put back
    assert (module.stat().st_size, module.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    assert server.code_stamp(str(package)) != before


def test_the_socket_directory_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert wire.runtime_dir() == str(tmp_path / "aicache")
    assert (tmp_path / "aicache").stat().st_mode & 0o777 == 0o700
    (tmp_path / "aicache").chmod(0o755)
    assert wire.runtime_dir() is None
    assert wire.socket_path() is None


def test_one_helper_per_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AICACHE_HOME", str(tmp_path / "one"))
    one = wire.store_key()
    monkeypatch.setenv("AICACHE_HOME", str(tmp_path / "two"))
    assert wire.store_key() != one


@pytest.fixture
def fake_helper(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """A listener at this store's socket path that answers each request with the next scripted reply."""
    path = wire.socket_path()
    assert path is not None
    replies: list[bytes] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                _message, fds = wire.receive_request(conn)
                for fd in fds:
                    os.close(fd)
                reply = replies.pop(0)
                if reply:
                    conn.sendall(reply)
                time.sleep(1.0)  # longer than the client waits

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield replies
    listener.close()
    os.unlink(path)


def test_a_refusal_or_a_closed_connection_leaves_the_command_to_the_client(fake_helper: list[bytes]) -> None:
    fake_helper.extend([wire.REFUSED])
    assert client.run(["ask", "q"]) is None


def test_a_silent_helper_is_passed_by_once_it_took_too_long(
    fake_helper: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_helper.append(b"")  # reads the request, never takes the command
    assert client.run(["ask", "q"]) is None  # the caller runs it in-process
    assert capsys.readouterr().err.count(f"did not take the command within {client.ACCEPT_TIMEOUT:g} s") == 1


def test_a_stuck_helper_is_passed_by_and_stop_ends_it(
    warm: dict[str, str], fake_llm: FakeLLM, aicache_home: Path
) -> None:
    pid = helper_status(warm)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        fake_llm.enqueue(Reply.text("answered anyway"))
        answered = aicache(warm, "ask", "while the helper is stopped")
        assert (answered.returncode, answered.stdout) == (0, b"answered anyway\n"), answered.stderr
        assert answered.stderr.count(b"did not take the command") == 1, answered.stderr
        assert helper_status(warm)["not_answering_pid"] == pid
        refused = aicache(warm, "helper", "start")
        assert refused.returncode == 1 and f"(pid {pid}) is running but does not answer".encode() in refused.stderr
        stopped = aicache(warm, "helper", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert f"ended the helper (pid {pid}), which did not answer".encode() in stopped.stderr, stopped.stderr
        wait_for(lambda: gone(pid), 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert helper_status(warm).get("pid") != pid  # none, or the one the in-process run started for next time
    # The request it had queued while stopped was never run a second time.
    assert len(fake_llm.requests) == 1
    assert rows(aicache_home, "SELECT COUNT(*) FROM episodes") == [(1,)]


def test_a_stuck_helper_that_wakes_up_does_not_run_the_command_again(
    warm: dict[str, str], fake_llm: FakeLLM, aicache_home: Path
) -> None:
    pid = helper_status(warm)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        fake_llm.enqueue(Reply.text("answered once"))
        answered = aicache(warm, "ask", "while the helper is stopped")
        assert (answered.returncode, answered.stdout) == (0, b"answered once\n"), answered.stderr
    finally:
        os.kill(pid, signal.SIGCONT)
    log = Path(wire.companion(helper_status(warm)["socket"], ".log"))
    wait_for(lambda: server.SKIPPED_LATE in log.read_text(), 10)  # it took the queued request, then let it go
    assert len(fake_llm.requests) == 1
    assert rows(aicache_home, "SELECT question, outcome FROM episodes") == [("while the helper is stopped", "miss")]
