"""The report's picture: score against generated tokens per example, one point per system.

Where a distilled student sits relative to System 1 (cheap, weak) and System 2 (strong, costly)
is the whole point of distillation; this puts it on one page. Needs matplotlib (`s2distill[plot]`);
without it the report says so and carries on.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from s2distill.artifacts import atomic_write_bytes
from s2distill.report.row import Row, rows_of


def plot_score_vs_tokens(rows: Iterable[Row | Mapping[str, Any]], path: Path, *, title: str) -> Path | None:
    """Write the scatter to `path` (PNG); return it, or None when matplotlib is missing. `rows`:
    `Row`s, or report.json's dicts."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return None
    points = [r for r in rows_of(rows) if r.score is not None and r.tokens_per_example is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colours = {"system1": "tab:blue", "system2": "tab:red", "distilled": "tab:green"}
    seen: dict[tuple[float, float], int] = {}
    for row in points:
        label = row.system + (f" ({row.teacher or row.stage})" if row.teacher or row.stage else "")
        x, y = max(row.tokens_per_example, 0.1), 100 * row.score
        ax.scatter(x, y, s=60, color=colours.get(row.system, "tab:gray"), zorder=3)
        stacked = seen.setdefault((round(x, 1), round(y, 1)), 0)  # labels of coinciding points go one under another
        seen[(round(x, 1), round(y, 1))] += 1
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4 - 11 * stacked), fontsize=8)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("generated tokens per example (log scale, all calls)")
    ax.set_ylabel(f"{points[0].metric if points else 'score'} (%)")
    ax.set_ylim(-5, 105)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), image.getvalue())  # whole or not at all (a full disk leaves the old one)
    return path
