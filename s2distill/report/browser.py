"""Headless Chromium, to check report.html the way a person sees it and to picture it.

Used by the tests (the page's DOM after its script ran: rows, counts, filters) and by
`benchmarks/report_html.py` (render time with thousands of inputs, the README's screenshot).
Chromium is Debian's `chromium` package (`apt-get install chromium`); set `CHROMIUM` to use
another binary. Every call starts a fresh browser with a throwaway profile and no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars")


def find_chromium() -> str | None:
    """The Chromium binary: $CHROMIUM, or chromium / chromium-browser / google-chrome on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium, or set CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="s2d-chromium-") as profile:
        return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=True)


def page_url(path: Path, fragment: str = "") -> str:
    return Path(path).resolve().as_uri() + (f"#{fragment}" if fragment else "")


def dump_dom(path: Path, fragment: str = "", *, timeout: float = 120) -> str:
    """The page's DOM once loaded and its script has run (`fragment`: the filters, as in the page's URL)."""
    return _run(["--dump-dom", page_url(path, fragment)], timeout=timeout).stdout


def screenshot(path: Path, png: Path, *, fragment: str = "", width: int = 1280, height: int = 1600,
               timeout: float = 120) -> Path:
    """A PNG of the page's first `height` pixels at `width`."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    # the virtual time budget lets layout and paint finish before the picture is taken
    _run([f"--screenshot={png}", f"--window-size={width},{height}", "--virtual-time-budget=10000",
          "--run-all-compositor-stages-before-draw", page_url(path, fragment)],
         timeout=timeout)
    return png
