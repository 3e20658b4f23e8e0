"""`aicache config` and `aicache keys`: every setting checked against one schema, at `set` and at load.

Each test runs the real command line in a subprocess against this test's home: a real config file, a real key
file, and for asks the local fake LLM server.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from aicache import schema
from aicache.errors import ExitCode
from tests.conftest import AICACHE, cli_env
from tests.fakellm import FakeLLM, Reply

COMMENTED = """\
# my settings: keep these comments
model = "gpt-4o"   # the good one

[cache]
# lower means more hits
semantic = false
"""


def run(home: Path, *args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*AICACHE, *args], input=stdin, capture_output=True, env=cli_env(home, **env), timeout=120)


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aicache: error:"), result.stderr
    return lines[0]


@pytest.fixture
def config_file(aicache_home: Path) -> Path:
    aicache_home.mkdir(parents=True, exist_ok=True)
    path = aicache_home / "config.toml"
    path.write_text(COMMENTED)
    return path


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("cache.threshold", "high", "must be a number from 0 to 1"),
        ("cache.threshold", "1.5", "must be a number from 0 to 1"),
        ("cache.threshold", "-0.5", "must be a number from 0 to 1"),  # a negative number, not an unknown option
        ("helper.idle_minutes", "abc", "must be a whole number of at least 1"),
        ("helper.idle_minutes", "0", "must be a whole number of at least 1"),
        ("helper.idle_minutes", "2.5", "must be a whole number of at least 1"),
        ("http.retries", "-1", "must be a whole number of at least 0"),
        ("provider", "openia", "must be one of openai, anthropic, ollama, command"),
        ("stream", "maybe", "must be true or false"),
        ("redact.patterns", '["ACME-[0-9"]', "must hold valid regular expressions"),
        ("redact.patterns", "ACME", "must be a list of regular expressions"),
        ("providers.openai.base_url", "api.example.com", "must be an http:// or https:// URL"),
        ("providers.command.argv", "claude -p", "must be a list of strings"),
        ("providers.command.prompt_via", "pipe", "must be one of stdin, arg"),
        ('prices."gpt-4.1".input', "cheap", "must be a number of at least 0"),
    ],
)
def test_set_refuses_a_bad_value_and_leaves_the_file_alone(
    aicache_home: Path, config_file: Path, name: str, value: str, rule: str
) -> None:
    result = run(aicache_home, "config", "set", name, value)
    assert result.returncode == ExitCode.CONFIG
    message = one_line_error(result)
    assert name in message and rule in message and str(config_file) in message
    assert config_file.read_text() == COMMENTED


def test_set_keeps_comments_and_formatting_and_accepts_negative_looking_text(
    aicache_home: Path, config_file: Path
) -> None:
    assert run(aicache_home, "config", "set", "cache.threshold", "0.8").returncode == 0
    assert run(aicache_home, "config", "set", "model", "gpt-4.1-mini").returncode == 0
    assert run(aicache_home, "config", "set", "aliases.neg", "-mini").returncode == 0  # a string that starts with -
    assert run(aicache_home, "config", "set", 'prices."gpt-4.1".input', "2").returncode == 0
    assert run(aicache_home, "config", "set", "providers.command.argv", '["claude", "-p"]').returncode == 0
    text = config_file.read_text()
    assert text.startswith(
        "# my settings: keep these comments\n"
        'model = "gpt-4.1-mini"   # the good one\n\n'
        "[cache]\n# lower means more hits\nsemantic = false\nthreshold = 0.8\n"
    )
    data = tomllib.loads(text)
    assert data["aliases"] == {"neg": "-mini"}
    assert data["prices"] == {"gpt-4.1": {"input": 2}}
    assert data["providers"]["command"]["argv"] == ["claude", "-p"]
    assert config_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in config_file.parent.iterdir() if "tmp" in p.name) == []


def test_a_string_setting_takes_text_that_looks_like_a_number(aicache_home: Path, config_file: Path) -> None:
    assert run(aicache_home, "config", "set", "model", "4").returncode == 0
    assert run(aicache_home, "config", "get", "model").stdout == b"4\n"


def test_unknown_names_are_refused_by_set_with_a_suggestion(aicache_home: Path, config_file: Path) -> None:
    result = run(aicache_home, "config", "set", "cache.treshold", "0.5")
    assert result.returncode == ExitCode.CONFIG
    assert "unknown setting cache.treshold; did you mean cache.threshold?" in one_line_error(result)
    assert run(aicache_home, "config", "set", "cache", "1").returncode == ExitCode.CONFIG  # a table, not a value
    assert config_file.read_text() == COMMENTED


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ("[cache]\nthreshold = 'high'\n", "cache.threshold"),
        ("[helper]\nidle_minutes = 'abc'\n", "helper.idle_minutes"),
        ("provider = 'openia'\n", "provider"),
        ("stream = 'maybe'\n", "stream"),
        ("[redact]\npatterns = ['(unclosed']\n", "redact.patterns"),
        ("http = 3\n", "http"),
    ],
)
def test_a_bad_value_in_the_file_stops_every_command_by_name(
    aicache_home: Path, config_file: Path, fake_llm: FakeLLM, line: str, setting: str
) -> None:
    config_file.write_text(line.replace("[cache]\n", "[cache]\nsemantic = false\n") if "[cache]" in line else line)
    for command in (["ask", "a question"], ["config", "show"], ["helper", "start"]):
        helper = "1" if command[0] == "helper" else "0"  # turned on, so that the config is what stops it
        env = {"OPENAI_BASE_URL": fake_llm.openai_url, "OPENAI_API_KEY": "sk-test", "AICACHE_HELPER": helper}
        result = run(aicache_home, *command, **env)
        assert result.returncode == ExitCode.CONFIG, (command, result.stderr)
        message = one_line_error(result)
        assert setting in message and str(config_file) in message
    assert fake_llm.requests == []


def test_a_bad_environment_override_is_named(aicache_home: Path, config_file: Path) -> None:
    result = run(aicache_home, "ask", "a question", AICACHE_PROVIDER="openia")
    assert result.returncode == ExitCode.CONFIG
    assert "provider in AICACHE_PROVIDER must be one of" in one_line_error(result)


def test_a_bad_setting_leaves_the_commands_that_do_not_use_settings_running(
    aicache_home: Path, config_file: Path
) -> None:
    # As the README says: reading history needs no provider, and config set is how the value gets fixed.
    assert run(aicache_home, "config", "get", "model", AICACHE_PROVIDER="openia").returncode == ExitCode.CONFIG
    for command in (["log", "-n", "1"], ["stats"], ["keys", "list"], ["config", "set", "model", "gpt-4.1"]):
        result = run(aicache_home, *command, AICACHE_PROVIDER="openia")
        assert result.returncode == 0, (command, result.stderr)


def test_unknown_names_in_the_file_are_warned_about_and_ignored(
    aicache_home: Path, config_file: Path, fake_llm: FakeLLM
) -> None:
    config_file.write_text(COMMENTED + "treshold = 0.5\n")  # under [cache]: a typo of cache.threshold
    fake_llm.enqueue(Reply.text("an answer"))
    result = run(aicache_home, "ask", "a question", OPENAI_BASE_URL=fake_llm.openai_url, OPENAI_API_KEY="sk-test")
    assert result.returncode == 0 and result.stdout == b"an answer\n"
    warnings = [line for line in result.stderr.decode().splitlines() if "warning" in line]
    assert warnings == [
        f"aicache: warning: unknown setting cache.treshold in {config_file} "
        "(ignored; `aicache config unset cache.treshold` removes it)"
    ]
    assert run(aicache_home, "config", "unset", "cache.treshold").returncode == 0  # the way to remove it
    assert "treshold" not in config_file.read_text()


def test_get_and_unset(aicache_home: Path, config_file: Path) -> None:
    assert run(aicache_home, "config", "get", "model").stdout == b"gpt-4o\n"
    assert run(aicache_home, "config", "get", "helper.idle_minutes").stdout == b"30\n"  # the default
    assert run(aicache_home, "config", "get", "cache.threshold").stdout == b""  # unset, worked out at run time
    shown = json.loads(run(aicache_home, "config", "get", "model", "--json").stdout)
    assert (shown["value"], shown["source"]) == ("gpt-4o", "file")
    missing = run(aicache_home, "config", "get", "cache.treshold")
    assert missing.returncode == ExitCode.CONFIG and "did you mean cache.threshold" in one_line_error(missing)

    unset = run(aicache_home, "config", "unset", "model")
    assert unset.returncode == 0 and f"unset model in {config_file}" in unset.stderr.decode()
    assert run(aicache_home, "config", "get", "model").stdout == b"gpt-4o-mini\n"
    assert config_file.read_text() == COMMENTED.replace('model = "gpt-4o"   # the good one\n', "")
    again = run(aicache_home, "config", "unset", "model")
    assert again.returncode == 0 and "was not set" in again.stderr.decode()
    assert run(aicache_home, "config", "unset", "no.such").returncode == ExitCode.CONFIG


def test_unset_removes_the_tables_it_leaves_empty(aicache_home: Path, config_file: Path) -> None:
    config_file.write_text(
        COMMENTED
        + '\n[http]\nretries = 2\n\n[providers.openai]\nbase_url = "http://127.0.0.1:9"\n\n'
        + '[prices."gpt-4.1"]\ninput = 2.0\noutput = 8.0\n\n[hook]\n# my hook notes\ntimeout = 9\n'
    )
    for name in ("http.retries", "providers.openai.base_url", 'prices."gpt-4.1".input', "hook.timeout"):
        assert run(aicache_home, "config", "unset", name).returncode == 0, name
    # [http] and [providers.openai] (and its implicit [providers]) are gone; a table still holding a key or a
    # comment stays, and the rest of the file is as the user wrote it.
    assert config_file.read_text() == COMMENTED + '\n[prices."gpt-4.1"]\noutput = 8.0\n\n[hook]\n# my hook notes\n'
    assert run(aicache_home, "config", "get", "http.retries").stdout == b"3\n"


def test_get_and_show_give_the_value_in_effect_of_an_unset_setting(aicache_home: Path, config_file: Path) -> None:
    expected = {"cache.candidates": "5", "decision.kind": "model", "index.ef_search": "64", "hook.model": "gpt-4o"}
    for name, value in expected.items():  # hook.model unset takes model's value, set in the file
        assert run(aicache_home, "config", "get", name).stdout.decode() == value + "\n"
    piped = run(aicache_home, "config", "show").stdout.decode().splitlines()
    assert "cache.candidates\t5\t5\tdefault" in piped  # name, value in effect, default, source
    assert "hook.model\tgpt-4o\tmodel\tdefault" in piped
    assert "decision.threshold\t\tcalibrated\tdefault" in piped  # worked out at run time: the default says how


def test_fixed_defaults_agree_with_the_code_that_falls_back_on_them() -> None:
    from aicache.semantic import decide, tier
    from aicache.semantic import index as vector_index

    defaults = {s.name: s.default for s in schema.SETTINGS}
    assert defaults["cache.candidates"] == tier.CANDIDATES
    assert defaults["cache.exact_scan_max"] == vector_index.EXACT_MAX
    assert defaults["index.ef_search"] == vector_index.EF_SEARCH
    assert defaults["decision.kind"] == decide.DEFAULT_KIND


def details(home: Path, **env: str) -> dict[str, Any]:
    result = run(home, "config", "show", "--json", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_show_lists_every_setting_its_default_its_source_and_the_endpoint(
    aicache_home: Path, config_file: Path
) -> None:
    assert run(aicache_home, "config", "set", "aliases.fast", "openai/gpt-4o-mini").returncode == 0
    shown = details(aicache_home, AICACHE_PROVIDER="ollama", OLLAMA_HOST="http://10.1.2.3:8080")
    rows = {row["name"]: row for row in shown["details"]}
    documented = {s.name for s in schema.SETTINGS if "*" not in s.name}
    assert documented | {"aliases.fast"} == set(rows)
    assert rows["model"] == {**rows["model"], "value": "gpt-4o", "default": "gpt-4o-mini", "source": "file"}
    assert rows["provider"]["source"] == "env AICACHE_PROVIDER"
    assert rows["helper.idle_minutes"] == {**rows["helper.idle_minutes"], "value": 30, "source": "default"}
    assert rows["aliases.fast"]["value"] == "openai/gpt-4o-mini"
    assert shown["endpoint"] == {"provider": "ollama", "url": "http://10.1.2.3:8080/v1", "source": "env OLLAMA_HOST"}

    openai = details(aicache_home, OPENAI_BASE_URL="http://127.0.0.1:9/v1")["endpoint"]
    assert openai == {"provider": "openai", "url": "http://127.0.0.1:9/v1", "source": "env OPENAI_BASE_URL"}
    assert run(aicache_home, "config", "set", "providers.openai.base_url", "https://llm.example/v1").returncode == 0
    configured = details(aicache_home)["endpoint"]
    assert configured["url"] == "https://llm.example/v1"
    assert configured["source"] == "providers.openai.base_url (file)"

    piped = run(aicache_home, "config", "show").stdout.decode().splitlines()
    assert "helper.idle_minutes\t30\t30\tdefault" in piped  # in a pipe: one tab-separated line per setting


def test_concurrent_sets_all_land(aicache_home: Path, config_file: Path) -> None:
    processes = [
        subprocess.Popen(
            [*AICACHE, "config", "set", f"aliases.a{n}", f"model-{n}"],
            env=cli_env(aicache_home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for n in range(6)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0] * 6
    data = tomllib.loads(config_file.read_text())
    assert data["aliases"] == {f"a{n}": f"model-{n}" for n in range(6)}
    assert data["model"] == "gpt-4o" and "# my settings" in config_file.read_text()


def test_only_the_commands_that_write_the_file_import_tomlkit(aicache_home: Path, config_file: Path) -> None:
    probe = (
        "import sys\nfrom aicache.cli import main\n"
        "for argv in (['config', 'show'], ['config', 'get', 'model'], ['ask', '--cache-only', 'anything']):\n"
        "    sys.argv = ['aicache', *argv]\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        "print('tomlkit' in sys.modules, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=cli_env(aicache_home))
    assert result.stderr.strip().splitlines()[-1] == b"False"


# -- keys ---------------------------------------------------------------------------------------------------


def test_keys_set_refuses_names_no_provider_reads(aicache_home: Path) -> None:
    for name in ("opneai", "ollama", "ftp://host", "http://host:99999"):
        result = run(aicache_home, "keys", "set", name, stdin=b"sk-some-key-0123456789\n")
        assert result.returncode == ExitCode.CONFIG, (name, result.stderr)  # as an unknown provider is
        assert name in one_line_error(result)
    assert not (aicache_home / "keys.json").exists()
    for name in ("anthropic", "https://openrouter.ai/api/v1/"):
        assert run(aicache_home, "keys", "set", name, stdin=b"sk-some-key-0123456789\n").returncode == 0
    stored = json.loads((aicache_home / "keys.json").read_text())
    assert sorted(stored) == ["anthropic", "https://openrouter.ai/api/v1"]


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (("opneai",), b"sk-some-key-0123456789\n", ExitCode.CONFIG, "no provider takes a stored key named 'opneai'"),
        (("ftp://host",), b"sk-some-key-0123456789\n", ExitCode.CONFIG, "not a valid http:// or https:// base URL"),
        (("",), b"sk-some-key-0123456789\n", ExitCode.CONFIG, "a key needs a provider name or base URL"),
        (("openai", "--key", ""), b"", ExitCode.USAGE, "an API key cannot be empty"),
        (("openai", "--key", "sk-one two"), b"", ExitCode.USAGE, "an API key cannot be empty or contain spaces"),
        (("openai",), b"", ExitCode.USAGE, "an API key cannot be empty"),
        (("openai",), b"\n", ExitCode.USAGE, "an API key cannot be empty"),
        (("openai",), b"\xff\xfesk-some-key-0123456789\n", ExitCode.USAGE, "an API key is printable ASCII"),
        (("openai",), None, ExitCode.USAGE, "no key given: pass --key"),
        (("openai", "--key", "sk-some-key-0123456789"), b"", ExitCode.CONFIG, "cannot read the key file"),
    ],
)
def test_keys_set_exit_codes_follow_the_table(
    aicache_home: Path, args: tuple[str, ...], stdin: bytes | None, code: ExitCode, message: str
) -> None:
    """A name no provider reads or a key file that cannot be used: configuration (5); a bad key: usage (2)."""
    aicache_home.mkdir(parents=True, exist_ok=True)
    if message.startswith("cannot read"):
        (aicache_home / "keys.json").mkdir()  # neither readable nor writable as a file
    if stdin is None:  # stdin closed: `aicache keys set openai <&-`
        result = subprocess.run(
            [*AICACHE, "keys", "set", *args],
            stdin=None,
            capture_output=True,
            env=cli_env(aicache_home),
            preexec_fn=lambda: os.close(0),
            timeout=120,
        )
    else:
        result = run(aicache_home, "keys", "set", *args, stdin=stdin)
    assert result.returncode == code, result.stderr
    assert message in one_line_error(result)
    assert not (aicache_home / "keys.json").is_file()


def test_keys_remove(aicache_home: Path) -> None:
    assert run(aicache_home, "keys", "set", "openai", stdin=b"sk-first-key-0123456789\n").returncode == 0
    assert run(aicache_home, "keys", "set", "anthropic", stdin=b"sk-ant-key-0123456789\n").returncode == 0
    removed = run(aicache_home, "keys", "remove", "openai")
    assert removed.returncode == 0 and b"removed the openai key" in removed.stderr
    assert json.loads((aicache_home / "keys.json").read_text()) == {"anthropic": "sk-ant-key-0123456789"}
    assert (aicache_home / "keys.json").stat().st_mode & 0o777 == 0o600
    again = run(aicache_home, "keys", "remove", "openai")
    assert again.returncode == ExitCode.CONFIG and "no key is stored for 'openai'" in one_line_error(again)


def test_a_relative_home_is_made_absolute_once(tmp_path: Path) -> None:
    """`AICACHE_HOME=relhome` names tmp/a/relhome run in tmp/a: its files, and its helper, not tmp/b's."""
    outputs = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        env = cli_env(Path("relhome"))
        path = subprocess.run([*AICACHE, "config", "path"], capture_output=True, env=env, cwd=tmp_path / name)
        status = subprocess.run([*AICACHE, "helper", "status"], capture_output=True, env=env, cwd=tmp_path / name)
        assert path.returncode == 0 and status.returncode == 0, path.stderr + status.stderr
        assert path.stdout.decode().strip() == str(tmp_path / name / "relhome" / "config.toml")
        outputs[name] = status.stdout.decode().splitlines()[-1]  # "log: <runtime dir>/<store key>.log"
    assert outputs["a"] != outputs["b"]


@pytest.mark.parametrize(
    ("command", "failing", "reason"),
    [
        (("config", "set", "model", "gpt-4.1"), errno.EROFS, "read-only file system"),
        (("config", "set", "model", "gpt-4.1"), errno.ENOSPC, "no space left on device"),
        (("config", "unset", "model"), errno.EROFS, "read-only file system"),
        (("keys", "set", "openai", "--key", "sk-new-key-0123456789"), errno.EROFS, "read-only file system"),
        (("keys", "set", "openai", "--key", "sk-new-key-0123456789"), errno.ENOSPC, "no space left on device"),
    ],
)
def test_a_file_that_cannot_be_written_is_named_and_left_intact(
    aicache_home: Path,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
    failing: int,
    reason: str,
) -> None:
    """Read-only: every file created in the home is refused (lock and temporary file); disk full: every write."""
    from aicache import cli

    keys = aicache_home / "keys.json"
    keys.write_text('{"openai": "sk-old-key-0123456789"}\n')
    before = {path: path.read_bytes() for path in (config_file, keys)}
    real_open, real_write = os.open, os.write

    def refusing_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if failing == errno.EROFS and flags & os.O_CREAT and str(path).startswith(str(aicache_home)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kw)

    def refusing_write(fd: int, data: Any) -> int:
        if failing == errno.ENOSPC:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(os, "write", refusing_write)
    with pytest.raises(SystemExit) as exit_:
        cli._main(list(command))
    monkeypatch.undo()
    target = keys if command[0] == "keys" else config_file
    assert exit_.value.code == ExitCode.CONFIG
    assert capsys.readouterr().err.strip() == f"aicache: error: cannot write {target}: {reason}"
    assert {path: path.read_bytes() for path in before} == before
    assert not [path.name for path in aicache_home.iterdir() if ".tmp-" in path.name]
