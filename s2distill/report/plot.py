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


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed), or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig, path: Path) -> Path:
    """Write a figure to `path` as PNG, whole or not at all (a full disk leaves the old one), and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), image.getvalue())
    return Path(path)


def plot_score_vs_tokens(rows: Iterable[Row | Mapping[str, Any]], path: Path, *, title: str) -> Path | None:
    """Write the scatter to `path` (PNG); return it, or None when matplotlib is missing. `rows`:
    `Row`s, or report.json's dicts."""
    plt = pyplot()
    if plt is None:
        return None
    from matplotlib.ticker import FuncFormatter
    points = [r for r in rows_of(rows) if r.score is not None and r.tokens_per_example is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colours = {"system1": "tab:blue", "system2": "tab:red", "distilled": "tab:green", "cascade": "tab:purple"}
    seen: dict[tuple[float, float], int] = {}
    for row in points:
        label = row.system_label + (f" ({row.teacher or row.stage})" if row.teacher or row.stage else "")
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
    return save_figure(fig, path)


def plot_threshold_curves(audit: Mapping[str, Any] | None, path: Path) -> Path | None:
    """The curation audit's threshold curves (report.json's `curation_audit`), one panel per
    curation and threshold: precision and coverage against the threshold, the recipe's marked.
    Written to `path` (PNG); None when there is no curve or matplotlib is missing."""
    curves = [(audit_["variant"], curve) for audit_ in (audit or {}).get("variants", []) for curve in audit_["curves"]]
    if not curves:
        return None
    plt = pyplot()
    if plt is None:
        return None
    columns = min(len(curves), 3)
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), dpi=120, squeeze=False)
    for ax in axes.flat[len(curves):]:
        ax.axis("off")
    for ax, (variant, curve) in zip(axes.flat, curves):
        points = curve["points"]
        xs = [p["threshold"] for p in points]
        for key, label, colour in (("precision", "precision of kept answers", "tab:green"),
                                   ("coverage", "coverage (inputs kept)", "tab:blue")):
            ys = [100 * p[key] if p[key] is not None else float("nan") for p in points]
            ax.plot(xs, ys, marker="o", markersize=3, color=colour, label=label)
        ax.axvline(curve["chosen"], color="tab:red", linestyle="--", linewidth=1,
                   label=f"recipe: {curve['setting']} {curve['chosen']:g}")
        ax.set_xlabel(f"{curve['filter']}: {curve['setting']}")
        ax.set_ylabel("%")
        ax.set_ylim(-5, 105)
        ax.set_title(variant, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, path)
