"""The learn report: one self-contained HTML page drawn from learn's aggregates, written atomically."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aicache.errors import AicacheError, ExitCode, UsageError
from aicache.learn import report
from tests import report_sample
from tests.conftest import cli_env

IMAGE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in IMAGE.findall(page)]


def section(page: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', page, re.S)
    assert found, f"no {name} section"
    return found.group(1)


def test_a_full_result_renders_every_section_with_its_three_plots() -> None:
    from PIL import Image

    result = report_sample.result()
    page = report.render(result, report_sample.history())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    pictures = images(page)
    assert len(pictures) == 3  # operating point, history, HNSW search
    for picture in pictures:
        with Image.open(io.BytesIO(picture)) as image:
            assert image.format == "PNG" and image.width >= 800 and image.height >= 300
            # a drawn plot, not a blank canvas: many distinct colours (lines, bands, text)
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50
    assert "5,120" in page and "model:minilm-head-3" in page and "at most 1% wrong answers" in page
    calibrations = section(page, "calibrations")
    assert "git-commit-message" in calibrations and "too few wrong pairs to bound" in calibrations
    assert "served 92/420 (21.9%)" in calibrations and "wrong 1/640 (0.16%, &le;&nbsp;0.74%)" in calibrations
    refit = section(page, "refit")
    assert "pair-features-68ba177975bb</code> &rarr; <code>pair-features-42ba945dd4a7" in refit
    assert "163 + 20,000" in refit and "the threshold alone serves as much" in refit
    assert "1,791 asks over 45 days" in section(page, "history")
    search = section(page, "search")
    assert "index.ef_search = 64" in search and "sentence-transformers/all-MiniLM-L6-v2" in search
    assert '<span class="add">+threshold = 0.86</span>' in section(page, "proposal")
    proposals = section(page, "proposals")
    for status in ("applied", "rejected", "proposed"):
        assert f'<span class="status {status}">{status}</span>' in proposals
    assert "aicache/learn/2026-11-20-ef-search" in proposals


def test_a_new_users_thin_result_says_so_in_sentences_instead_of_empty_plots() -> None:
    page = report.render(report_sample.thin_result(), [])
    assert images(page) == []
    assert "no episodes yet" in page
    assert "No curve to draw: no labelled pairs in the newer part" in section(page, "operating-point")
    assert "No calibration was attempted" in section(page, "calibrations")
    assert "No asks recorded yet" in section(page, "history")
    assert 'id="search"' not in page  # no search was run, so there is no section for it
    assert "Nothing to propose" in section(page, "proposal")
    assert "No proposals yet" in section(page, "proposals")


def test_a_single_point_a_day_without_asks_and_an_empty_search_still_render() -> None:
    one_point = report_sample.result()["curve"]["points"][:1]
    result = report_sample.result(
        curve={"group": "all", "current": 0.9, "fitted": None, "points": one_point},
        search={"hnsw": [], "candidates": [], "vetoes": {}, "embedding_models": [], "chosen": {}},
    )
    history = [*report_sample.history(days=1), {**report_sample.history(days=1)[0], "day": "2026-10-21", "asks": 0}]
    page = report.render(result, history)
    assert "only one operating point was measured" in section(page, "operating-point")
    assert "No HNSW settings were replayed" in section(page, "search")
    assert len(images(page)) == 1  # the history of one asked day is still a plot
    assert "over 2 days" in section(page, "history")


def test_the_page_is_self_contained() -> None:
    page = report.render(report_sample.result(), report_sample.history())
    assert not re.search(r"https?:", page, re.I)
    assert "//" not in re.sub(IMAGE, "", page).replace("<!--", "")  # no protocol-relative URL either
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert len(sources) == 3 and all(source.startswith("data:image/png;base64,") for source in sources)
    assert "<link" not in page and "<script" not in page and "url(" not in page and "@import" not in page


def test_the_diff_and_every_other_text_is_escaped() -> None:
    hostile = '</pre><script>alert("x")</script>'
    result = report_sample.result(
        proposal={"slug": "a<b", "files": ["<x>.toml"], "diff": f"+{hostile}\n-<img src=y onerror=z>\n"},
        decision="model:<i>v</i>",
    )
    result["calibrations"][0]["why"] = "<b>because</b>"
    result["proposals"][0]["summary"] = "<script>1</script>"
    page = report.render(result, report_sample.history())
    assert "<script" not in page and "<img src=y" not in page and "<b>because" not in page and "<i>v" not in page
    diff = re.search(r'<pre class="diff">(.*?)</pre>', page, re.S)
    assert diff and "&lt;/pre&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in diff.group(1)
    assert "a&lt;b" in page and "&lt;x&gt;.toml" in page and "&lt;b&gt;because&lt;/b&gt;" in page


def test_an_unknown_result_schema_is_refused() -> None:
    with pytest.raises(UsageError, match=r"schema 'aicache.learn/9'"):
        report.render(report_sample.result(schema="aicache.learn/9"), [])


def test_write_replaces_the_file_whole_with_an_ordinary_mode(tmp_path: Path) -> None:
    target = tmp_path / "learn.html"
    target.write_text("old page", encoding="utf-8")
    report.write(target, "<p>new page</p>\n")
    assert target.read_text(encoding="utf-8") == "<p>new page</p>\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learn.html"]


def test_a_write_that_fails_halfway_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "learn.html"
    target.write_text("old page", encoding="utf-8")
    # A lone surrogate cannot be encoded: the write fails after the temporary file was created and partly written.
    with pytest.raises(AicacheError, match=r"cannot write the report to .*learn\.html"):
        report.write(target, "<p>" + "x" * 100_000 + "\ud800</p>")
    assert target.read_text(encoding="utf-8") == "old page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learn.html"]


@pytest.mark.parametrize("where", ["missing directory", "file as directory", "directory as file"])
def test_an_unwritable_path_is_one_clear_usage_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "out").mkdir()
    target = {
        "missing directory": tmp_path / "nope" / "learn.html",
        "file as directory": tmp_path / "notes.txt" / "learn.html",
        "directory as file": tmp_path / "out",
    }[where]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(UsageError) as raised:
        report.write(target, "<p>page</p>")
    message = str(raised.value)
    assert message.startswith(f"cannot write the report to {target}: ") and "\n" not in message
    assert raised.value.exit_code == ExitCode.USAGE
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no temporary file left behind


def test_matplotlib_loads_only_when_drawing_and_writes_nothing_in_home(tmp_path: Path, aicache_home: Path) -> None:
    home = tmp_path / "user-home"
    home.mkdir()
    env = cli_env(aicache_home, HOME=str(home))
    for name in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        env.pop(name, None)
    out = tmp_path / "learn.html"
    script = (
        "import sys, aicache.cli, aicache.learn.report as report\n"
        "assert 'matplotlib' not in sys.modules, 'imported before drawing'\n"
        "from pathlib import Path\n"
        "from tests import report_sample\n"
        "page = report.render(report_sample.result(), report_sample.history())\n"
        "assert 'matplotlib' in sys.modules\n"
        f"report.write(Path({str(out)!r}), page)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert len(images(out.read_text(encoding="utf-8"))) == 3
    assert list(home.rglob("*")) == []  # no font cache under ~/.cache or ~/.config
