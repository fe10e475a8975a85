"""report.html at scale, in headless Chromium; and the screenshot of a run's report in docs/guarantees.md.

Run: python benchmarks/report_html.py [--train 3000] [--test 1000]
     python benchmarks/report_html.py --screenshot runs/smoke docs/report.png

The first form writes a synthetic run folder (tests/synthetic_run.py: 4 samples per input with
few-shot prompts, verdicts, pairs, three evaluated systems), builds its report.html and prints the
page's size, the time to write it, and Chromium's time to load it, parse its data and draw the
first page of rows, with and without a filter. The second renders an existing run's report.html
to a PNG (Debian's `chromium`).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s2distill.report.browser import dump_dom, screenshot  # noqa: E402
from s2distill.report.html import write_html_report  # noqa: E402
from tests.synthetic_run import synthetic_run  # noqa: E402


def scale(train: int, test: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        report = synthetic_run(out, train=train, test=test)
        report.pop("expected")
        start = time.perf_counter()
        page = write_html_report(out, report)
        written = time.perf_counter() - start
        print(f"{train} training inputs × 4 samples, {test} test examples: report.html {page.stat().st_size / 1e6:.2f} MB, "
              f"written in {written:.2f} s")
        for fragment in ("split=train", "split=train&verdict=dropped&q=w12", "split=test&outcome=fixed"):
            start = time.perf_counter()
            dom = dump_dom(page, fragment)
            wall = time.perf_counter() - start
            script = re.search(r'<body[^>]*data-script-ms="([\d.]+)"', dom).group(1)
            ready = re.search(r'<body[^>]*data-ready-ms="([\d.]+)"', dom).group(1)
            count = re.search(r'id="count"[^>]*>([^<]*)', dom).group(1)
            print(f"  #{fragment}: script {script} ms, ready {ready} ms after navigation "
                  f"(chromium start to exit {wall:.1f} s): {count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--screenshot", nargs=2, metavar=("RUN_DIR", "PNG"))
    parser.add_argument("--size", default="1280x1500", help="WIDTHxHEIGHT of the screenshot")
    args = parser.parse_args()
    if args.screenshot:
        run, png = args.screenshot
        width, height = (int(v) for v in args.size.split("x"))
        print(screenshot(Path(run) / "report.html", Path(png), width=width, height=height))
    else:
        scale(args.train, args.test)


if __name__ == "__main__":
    main()
