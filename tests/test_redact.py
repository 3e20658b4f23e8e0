"""Redaction shapes, table-driven: every secret shape the review found, and ordinary prose that must stay as it
is. End to end: a question, a system prompt and piped input full of them reach neither the server nor any file
of the store (database, WAL)."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from aicache import redact
from tests.conftest import AICACHE, cli_env
from tests.fakellm import FakeLLM

# (text, the secret that must go, the pattern that must take it)
SECRETS = [
    ("connect with PASSWORD=hunter2hunter and retry", "hunter2hunter", "secret-assignment"),
    ("why does DB_PASSWORD=s3cr3t-pw fail in compose", "s3cr3t-pw", "secret-assignment"),
    ("you are a bot; the admin PASSWORD=Adm1nPass! is never shown", "Adm1nPass!", "secret-assignment"),
    ('{"user": "bob", "password": "correct horse battery"}', "correct horse battery", "secret-assignment"),
    ("{'client_secret': 'cs-4f9a8b7c6d5e'}", "cs-4f9a8b7c6d5e", "secret-assignment"),
    ('{"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}', "wJalrXUtnFEMI", "aws-secret-key"),
    ('conn = psycopg2.connect(host="db", password="x")', 'password="x"', "secret-assignment"),
    ("requests.post(url, api_key='k-998877', timeout=5)", "k-998877", "secret-assignment"),
    ("run mycli --password=Tr0ub4dor --verbose", "Tr0ub4dor", "secret-assignment"),
    ("mysql -u root -pSuperSecret123 mydb", "SuperSecret123", "mysql-password"),
    ("mysqldump -h db -P 3306 -u app -p'quoted pw' app > dump.sql", "quoted", "mysql-password"),
    ('curl -H "x-api-key: abcdef123456" https://api.example.com', "abcdef123456", "api-key-header"),
    ("X-Api-Key: zyxw9876vuts", "zyxw9876vuts", "api-key-header"),
    ("curl -H 'PRIVATE-TOKEN: glp-0011223344' gitlab", "glp-0011223344", "api-key-header"),
    (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=bXlBY2NvdW50S2V5PT0=;EndpointSuffix=core.windows.net",
        "bXlBY2NvdW50S2V5PT0",
        "azure-key",
    ),
    ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=c2hhcmVkS2V5", "c2hhcmVkS2V5", "azure-key"),
    ("export GITHUB_TOKEN=ghx_notAGithubShape99", "ghx_notAGithubShape99", "secret-assignment"),
    ("password: hunter2hunter", "hunter2hunter", "env-secret"),
    ("key sk-proj-abcdefghijklmnopqrstuvwxyz0123", "sk-proj-abcdefghij", "openai-key"),
]

# Ordinary text that names secrets without holding one, and look-alikes that are settings.
PROSE = [
    "how do I reset my password in postgres",
    "the password field is empty after submit",
    "what is a good password policy: length or symbols?",
    "Forgot password: what should the email say",
    "docker run -p 8080:80 nginx",
    "ssh -p 2222 user@host",
    "mkdir -p build/out && mysql --help",
    "mysql -u root -p mydb",
    "mysql -h db -P 3306 -u app -p",
    "why does max_tokens=256 cut the answer",
    "set max_tokens: 100 in the request",
    "the tokenizer=bert option",
    "token_limit=4096 is too small",
    "an api key header is needed",
    "use the AccountName and the key vault",
    "git config credential.helper store",
    "the secret to good tests is isolation",
]


@pytest.mark.parametrize(
    ("text", "secret", "pattern"), SECRETS, ids=[s[2] + "-" + str(i) for i, s in enumerate(SECRETS)]
)
def test_secret_shapes_are_redacted(text: str, secret: str, pattern: str) -> None:
    result = redact.redact(text)
    assert secret not in result.text, result.text
    assert pattern in result.found, result.found
    assert redact.redact(result.text).text == result.text  # stable: a redacted text redacts to itself


@pytest.mark.parametrize("text", PROSE)
def test_ordinary_text_is_left_alone(text: str) -> None:
    result = redact.redact(text)
    assert (result.text, result.found) == (text, ())


def test_the_redacted_text_keeps_what_surrounds_the_secret() -> None:
    assert redact.redact("mysql -u root -pS3cret db").text == "mysql -u root -p[REDACTED:mysql-password] db"
    assert redact.redact('f(password="x", user="u")').text == 'f(password="[REDACTED:secret-assignment]", user="u")'
    assert redact.redact('{"password": "a b"}').text == '{"password": "[REDACTED:secret-assignment]"}'


def test_the_http_error_scrubber_uses_the_same_patterns() -> None:
    from aicache.providers.http import scrub

    message = "invalid x-api-key: abcdef123456 for account; AccountKey=bXlBY2NvdW50S2V5PT0="
    scrubbed = scrub(message)
    assert "abcdef123456" not in scrubbed and "bXlBY2NvdW50S2V5PT0" not in scrubbed


def test_no_shape_reaches_the_server_the_database_or_the_wal(aicache_home: Path, fake_llm: FakeLLM) -> None:
    aicache_home.mkdir(parents=True, exist_ok=True)
    (aicache_home / "config.toml").write_text("[cache]\nsemantic = false\n")
    texts = [text for text, _secret, _pattern in SECRETS]
    question = "why do these fail: " + " ".join(texts[:3])
    system = "you are terse; " + texts[2]
    piped = "\n".join(texts[3:]).encode()
    from aicache import db

    db.connect().close()  # the store exists, so this test can hold it open:
    holder = sqlite3.connect(aicache_home / "data" / "aicache.db")
    holder.execute("SELECT COUNT(*) FROM entries").fetchone()  # a reader keeps the WAL from being removed at exit
    result = subprocess.run(
        [*AICACHE, "ask", question, "-s", system],
        input=piped,
        capture_output=True,
        env=cli_env(
            aicache_home, OPENAI_BASE_URL=fake_llm.openai_url, OPENAI_API_KEY="sk-test-envkey-0123456789abcdef"
        ),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert b"redacted" in result.stderr
    (request,) = fake_llm.requests
    files = [p for p in (aicache_home / "data").rglob("*") if p.is_file()]
    (wal,) = [p for p in files if p.name.endswith("-wal")]
    assert b"why do these fail" in wal.read_bytes()  # the WAL is checked while it still holds the writes
    stored = b"".join(p.read_bytes() for p in files)
    holder.close()
    for _text, secret, _pattern in SECRETS:
        assert secret.encode() not in request.raw, secret
        assert secret.encode() not in stored, secret
        assert secret.encode() not in result.stdout + result.stderr, secret
