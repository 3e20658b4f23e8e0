"""Proof that the page of ``aicache learn --report`` shows its plots in a real browser.

Renders the sample learn result of tests/report_sample.py (every section filled in) and a new user's thin result
(no labels, nothing to plot), has headless Chromium take screenshots of both, and checks with Pillow that the
pictures are not blank: the full page must be mostly not-white and hold many coloured pixels (the plots' lines and
bands), while the thin page, which has no plots, holds almost none. The PNGs go to benchmarks/out/ to be looked at.

Chromium is not part of the test suite (CI has none): on Debian, `apt-get install -y chromium`.

    python benchmarks/report_screenshot.py [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _harness
from aicache.learn import report
from tests import report_sample

WINDOW = (1200, 2400)
WHOLE_PAGE = (1200, 4400)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A pixel counts as coloured when its channels differ by this much: the plots' blue, orange, vermilion and green
# lines do, while text, grid lines, table borders and the background are grey.
SATURATION = 60
MIN_INKED = 0.005  # a blank page has no pixel darker than the background; even the thin page's text passes this
MIN_COLOURED = 5_000  # the sample's first screen holds two plots: tens of thousands of such pixels


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no Chromium found: install it (Debian: apt-get install -y chromium) and run again")


def screenshot(browser: str, page: Path, png: Path, window: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory(prefix="aicache-chromium-") as profile:
        argv = [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={window[0]},{window[1]}",
            page.resolve().as_uri(),
        ]
        done = subprocess.run(argv, capture_output=True, timeout=300, check=False)
    if done.returncode != 0 or not png.exists():
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        sys.exit(f"chromium failed ({done.returncode}) on {page}: " + " | ".join(tail))


def measure(png: Path) -> tuple[tuple[int, int], float, int]:
    """Size, share of pixels that are not white, and how many are coloured."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        size = rgb.size
        data = rgb.tobytes()
    pixels = list(zip(data[0::3], data[1::3], data[2::3], strict=True))
    not_white = sum(1 for r, g, b in pixels if min(r, g, b) < 240)
    coloured = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) >= SATURATION)
    return size, not_white / len(pixels), coloured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=_harness.ROOT / "benchmarks" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    browser = chromium()

    full = args.out / "learn-report.html"
    thin = args.out / "learn-report-thin.html"
    report.write(full, report.render(report_sample.result(), report_sample.history()))
    report.write(thin, report.render(report_sample.thin_result(), []))

    # A 1200x2400 screen holds the header and the first two plots; a taller one holds the whole sample page, the
    # search section's plot included. (Scrolling to an anchor instead leaves headless Chromium's shot half painted.)
    shots = [
        (full, WINDOW, args.out / "learn-report.png", True),
        (full, WHOLE_PAGE, args.out / "learn-report-whole.png", True),
        (thin, WINDOW, args.out / "learn-report-thin.png", False),
    ]
    print(f"{'screenshot':<28} {'size':>10} {'not white':>10} {'coloured px':>12}  check")
    failed = False
    for page, window, png, has_plots in shots:
        png.unlink(missing_ok=True)
        screenshot(browser, page, png, window)
        size, inked, coloured = measure(png)
        plotted = coloured >= MIN_COLOURED
        ok = size == window and inked > MIN_INKED and plotted == has_plots
        failed |= not ok
        expect = "plots" if has_plots else "no plots"
        verdict = f"ok ({expect})" if ok else f"FAILED (expected {expect})"
        print(f"{png.name:<28} {size[0]:>5}x{size[1]:<4} {inked:>10.1%} {coloured:>12,}  {verdict}")
    print(f"pages and screenshots in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
