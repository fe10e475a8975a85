"""The cascade's part of the report (stages/cascade.py): its threshold and how it was chosen, a table
of the cascade at thresholds along its curve beside the student and System 2 alone, and the curve
itself (score against generated tokens per example, every threshold) for each test split."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from s2distill.report.audit import pct
from s2distill.report.plot import pyplot, save_figure
from s2distill.scoring.cascade import threshold_text

TABLE_POINTS = 9  # thresholds shown in the tables (the whole curve is in report.json and the plot)


def _rule(rule: Mapping[str, float]) -> str:
    if "keep" in rule:
        return f"the fewest tokens keeping {100 * rule['keep']:g}% of System 2's validation score"
    return f"the best validation score within {rule['token_budget']:g} tokens per example"


def _thinned(curve: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """About TABLE_POINTS points evenly along the curve, its two ends among them, and the chosen
    point in its place (a threshold chosen on the validation split is rarely one of the test
    curve's own), in increasing threshold."""
    picked = list(curve)
    if len(curve) > TABLE_POINTS:
        step = (len(curve) - 1) / (TABLE_POINTS - 1)
        picked = [curve[i] for i in sorted({round(i * step) for i in range(TABLE_POINTS)})]
    if all(p["threshold"] != chosen["threshold"] for p in picked):
        picked.append(chosen)
    return sorted(picked, key=lambda p: (p["threshold"] is None, p["threshold"] or 0.0))


def _summary(section: Mapping[str, Any]) -> str:
    validation = section["validation"]
    chosen = validation["chosen"]
    against = "their labels" if validation["scored_against"] == "labels" else "System 2's answers (no labels)"
    auroc = validation.get("auroc")
    return (f"Cascade of {section['name']} with System 2 ({section['teacher']}): the student answers when the "
            f"probability of its answer is at least **{threshold_text(section['threshold'])}**, System 2 otherwise. "
            f"Chosen by the rule ({_rule(section['rule'])}) on {validation['n']} validation inputs, neither training "
            f"nor test inputs, scored against {against}: there {pct(chosen['score'])} at "
            f"{chosen['tokens_per_example']:.1f} tokens per example, {pct(chosen['routed'])} routed "
            f"(System 2 alone {pct(validation['system2_score'])}, the student alone {pct(validation['student_score'])}"
            + (f"; the confidence's AUROC for right against wrong answers {auroc:.3f}" if auroc is not None else "")
            + ").")


def cascade_lines(report: Mapping[str, Any]) -> list[str]:
    """report.md's section."""
    sections = report.get("cascade") or []
    if not sections:
        return []
    lines = ["## The distilled cascade", ""]
    for section in sections:
        lines += [_summary(section), ""]
        for test in section["tests"]:
            chosen = test["chosen"]
            auroc = f", AUROC {test['auroc']:.3f}" if test.get("auroc") is not None else ""
            headline = (f"**Test split {test['test'] or '(the recipe’s)'}**: the cascade {pct(chosen['score'])} at "
                        f"{chosen['tokens_per_example']:.1f} tokens ({pct(chosen['routed'])} routed{auroc}); System 2 "
                        f"{pct(test['system2']['score'])} at {test['system2']['tokens_per_example']:.1f}; the student "
                        f"{pct(test['student']['score'])} at {test['student']['tokens_per_example']:.1f}.")
            lines += [headline, "", "| threshold | score | tokens per example | routed to System 2 |", "|---:|---:|---:|---:|"]
            for point in _thinned(test["curve"], chosen):
                mark = " ◀" if point["threshold"] == chosen["threshold"] else ""
                lines.append(f"| {threshold_text(point['threshold'])}{mark} | {pct(point['score'])} | "
                             f"{point['tokens_per_example']:.1f} | {pct(point['routed'])} |")
            lines.append("")
    if report.get("cascade_plot"):
        lines += ["![the cascade's score against tokens at every threshold](cascade_curve.png)", ""]
    return lines


def cascade_html(report: Mapping[str, Any]) -> str:
    """report.html's section (plain HTML: the curve is the PNG beside it)."""
    sections = report.get("cascade") or []
    if not sections:
        return "<p class=\"muted\">No cascade in this recipe (<code>evaluate.cascade</code>).</p>"
    parts = []
    for section in sections:
        parts.append(f"<p>{html.escape(_summary(section)).replace('**', '')}</p>")
        for test in section["tests"]:
            chosen = test["chosen"]
            rows = "".join(
                f"<tr><td>{html.escape(threshold_text(p['threshold']))}{' ◀' if p['threshold'] == chosen['threshold'] else ''}"
                f"</td><td>{pct(p['score'])}</td><td>{p['tokens_per_example']:.1f}</td><td>{pct(p['routed'])}</td></tr>"
                for p in _thinned(test["curve"], chosen))
            parts.append(f"<h3>Test split {html.escape(test['test'] or '(the recipe’s)')}</h3>"
                         f"<p>System 2 {pct(test['system2']['score'])} at {test['system2']['tokens_per_example']:.1f} "
                         f"tokens; the student {pct(test['student']['score'])} at "
                         f"{test['student']['tokens_per_example']:.1f}; the cascade {pct(chosen['score'])} at "
                         f"{chosen['tokens_per_example']:.1f} ({pct(chosen['routed'])} routed).</p>"
                         "<table><tr><th>threshold</th><th>score</th><th>tokens per example</th>"
                         f"<th>routed to System 2</th></tr>{rows}</table>")
    if report.get("cascade_plot"):
        parts.append('<p><img src="cascade_curve.png" alt="the cascade\'s score against tokens at every threshold" '
                     'style="max-width:100%"></p>')
    return "".join(parts)


def plot_cascade_curves(sections: Sequence[Mapping[str, Any]] | None, path: Path) -> Path | None:
    """One panel per test split: the cascade's score against tokens at every threshold, the student
    and System 2 alone, and the chosen threshold marked. None without a curve or matplotlib."""
    panels = [(section, test) for section in sections or [] for test in section["tests"]]
    if not panels:
        return None
    plt = pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), dpi=120, squeeze=False)
    for ax, (section, test) in zip(axes.flat, panels):
        curve = test["curve"]
        ax.plot([p["tokens_per_example"] for p in curve], [100 * p["score"] for p in curve], marker="o", markersize=2,
                color="tab:purple", label="cascade, every threshold")
        ax.scatter([test["student"]["tokens_per_example"]], [100 * test["student"]["score"]], color="tab:green",
                   zorder=3, label="student alone")
        ax.scatter([test["system2"]["tokens_per_example"]], [100 * test["system2"]["score"]], color="tab:red",
                   zorder=3, label="System 2 alone")
        chosen = test["chosen"]
        ax.scatter([chosen["tokens_per_example"]], [100 * chosen["score"]], marker="*", s=140, color="black", zorder=4,
                   label=f"threshold {threshold_text(section['threshold'])}")
        ax.set_xlabel("generated tokens per example")
        ax.set_ylabel("score (%)")
        ax.set_ylim(-5, 105)
        ax.set_title(f"{section['name']}, test {test['test'] or '(recipe)'}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return save_figure(fig, path)
