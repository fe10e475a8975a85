"""The curation audit as the reports show it (report.json's `curation_audit`, stages/audit.py):
a table per curation and teacher in report.md, and in report.html the same table, the threshold
curves drawn as inline SVG (no script needed), and the rescued and poisoned inputs themselves.

"Precision of kept outputs" is the accuracy of the selected training data, the measure of TwT
Table 5 (81-85% for its confidence selection): each kept output is a training example. "Precision
of kept answers" is per input: its kept answers all right.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from s2distill.report.row import rows_of

TWT_MEASURE = "precision of kept outputs (accuracy of the selected training data: our reading of TwT Table 5)"
DEFINITIONS = (
    "Precision of kept answers: the kept inputs whose every kept answer is right, by the task's own score against "
    "the labels (read after curation, never by it), with its Wilson 95% interval. Precision of kept outputs: each kept "
    "output is a training example; the share that are right is the accuracy of the selected training data (our "
    "reading of TwT Table 5, whose caption says only \"accuracy\"). Coverage: the inputs kept, of all inputs. Rescued: kept inputs whose kept answers are right "
    "where System 1 is wrong. Poisoned: kept inputs with a wrong kept answer.")


def pct(value: float | None) -> str:
    """A share as the report prints it (the curation audit's, the cascade's): one decimal, a dash for none."""
    return "—" if value is None else f"{100 * value:.1f}%"


def _with_ci(value: float | None, ci: list[float] | None, n: int) -> str:
    if value is None:
        return "— (none kept)"
    interval = f" ({100 * ci[0]:.1f}–{100 * ci[1]:.1f}%)" if ci else ""
    return f"{pct(value)}{interval} of {n}"


def _labels_line(audit: Mapping[str, Any]) -> str:
    labels = audit["labels"]
    if labels["source"] == "hand":
        return (f"Labels: a hand-labelled sample of {labels['n']} training inputs (`{labels['file']}`): precision, "
                "rescued and poisoned are on these inputs alone, their intervals for a sample this size; coverage "
                "(which needs no label) is over every input.")
    return f"Labels: the task's train labels ({labels['n']} inputs), read after curation, never by it."


def student_scores(report: Mapping[str, Any]) -> dict[str, float]:
    """Each variant's last trained stage's score on the recipe's test split (greedy), by variant."""
    scores: dict[str, float] = {}
    for row in rows_of(report.get("rows") or []):
        if row.score is not None and row.test is None and not row.majority_of and row.stage:
            scores[row.system] = row.score
    return scores


def _teacher_rows(entry: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(teacher, kept outputs' precision, inputs it has a kept output on) of each teacher."""
    return [(name, _with_ci(t["precision"], t["precision_ci"], t["outputs"]), f"{t['inputs']} inputs")
            for name, t in entry["per_teacher"].items()]


def audit_lines(report: Mapping[str, Any]) -> list[str]:
    """report.md's section."""
    audit = report.get("curation_audit")
    if not audit:
        return []
    lines = ["## Curation audit", ""]
    if audit.get("labels") is None:
        return lines + [audit["note"], ""]
    scores = student_scores(report)
    lines += [_labels_line(audit), "", f"| variant | filter | teacher | precision of kept answers (95% CI) | "
              f"{TWT_MEASURE} | coverage | rescued | poisoned | student score |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for entry in audit["variants"]:
        lines.append(f"| {entry['variant']} | {entry['filter']} | all | "
                     f"{_with_ci(entry['precision'], entry['precision_ci'], entry['kept_labelled'])} | "
                     f"{_with_ci(entry['output_precision'], entry['output_precision_ci'], entry['outputs'])} | "
                     f"{entry['kept']} of {entry['inputs']} ({pct(entry['coverage'])}) | {entry['rescued']} | "
                     f"{entry['poisoned']} | {pct(scores.get(entry['variant']))} |")
        for name, precision, inputs in _teacher_rows(entry):
            lines.append(f"| | | {name} | | {precision} | {inputs} | | | |")
    first = audit["variants"][0]["system1"] if audit["variants"] else None
    if first:
        lines += ["", f"System 1 (for rescued: {audit['system1']}) is right on {first['right']} of {first['n']} "
                      f"labelled training inputs ({pct(first['accuracy'])}). {DEFINITIONS}"]
    for entry in audit["variants"]:
        lines += ["", *_curve_lines(entry)]
    if report.get("audit_plot"):
        lines += ["", "![precision and coverage against each threshold](threshold_curve.png)"]
    lines += ["", "Examples of rescued and poisoned inputs: report.html, and `audit/VARIANT.json`."]
    return lines + [""]


def _curve_lines(entry: Mapping[str, Any]) -> list[str]:
    if not entry["curves"]:
        return [f"**Threshold curve of {entry['variant']}**: none ({entry['no_curve']})."]
    lines = []
    for curve in entry["curves"]:
        lines += [f"**Threshold curve of {entry['variant']}** ({curve['filter']}'s `{curve['setting']}`, from the samples "
                  "already drawn; ◀ the recipe's):" + (" thinned to evenly spaced thresholds." if curve["thinned"] else ""),
                  "", f"| {curve['setting']} | inputs kept | coverage | precision of kept answers | precision of kept outputs |",
                  "|---:|---:|---:|---:|---:|"]
        for point in curve["points"]:
            mark = " ◀ recipe" + (f" ({curve['vote']})" if curve.get("vote") == "plurality" else "") if point["chosen"] else ""
            lines.append(f"| {point['threshold']:g}{mark} | {point['kept']} | {pct(point['coverage'])} | "
                         f"{_with_ci(point['precision'], point['precision_ci'], point['kept_labelled'])} | "
                         f"{pct(point['output_precision'])} |")
        if not curve["reproduced"]:
            lines += ["", f"**Warning**: run again at the recipe's threshold, the filter decided {curve['differs']} "
                          "inputs otherwise than curation did; the curve is approximate."]
    return lines


# -- report.html ---------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def audit_html(report: Mapping[str, Any]) -> str:
    """report.html's section: the table, the curves and the examples."""
    audit = report.get("curation_audit")
    if not audit:
        return "<p>No curation audit in this report.</p>"
    if audit.get("labels") is None:
        return f"<p>{_e(audit['note'])}</p>"
    scores = student_scores(report)
    body = []
    for entry in audit["variants"]:
        body.append(f"<tr class=audit-variant data-variant='{_e(entry['variant'])}'><td>{_e(entry['variant'])}</td>"
                    f"<td>{_e(entry['filter'])}</td><td>all</td>"
                    f"<td class=n>{_e(_with_ci(entry['precision'], entry['precision_ci'], entry['kept_labelled']))}</td>"
                    f"<td class=n>{_e(_with_ci(entry['output_precision'], entry['output_precision_ci'], entry['outputs']))}</td>"
                    f"<td class=n>{entry['kept']} of {entry['inputs']} ({pct(entry['coverage'])})</td>"
                    f"<td class=n>{entry['rescued']}</td><td class=n>{entry['poisoned']}</td>"
                    f"<td class=n>{pct(scores.get(entry['variant']))}</td></tr>")
        for name, precision, inputs in _teacher_rows(entry):
            body.append(f"<tr><td></td><td></td><td>{_e(name)}</td><td></td><td class=n>{_e(precision)}</td>"
                        f"<td class=n>{_e(inputs)}</td><td></td><td></td><td></td></tr>")
    head = ("<tr><th>variant</th><th>filter</th><th>teacher</th><th class=n>precision of kept answers (95% CI)</th>"
            f"<th class=n>{_e(TWT_MEASURE)}</th><th class=n>coverage</th><th class=n>rescued</th>"
            "<th class=n>poisoned</th><th class=n>student score</th></tr>")
    parts = [f"<p>{_e(_labels_line(audit).replace('`', ''))}</p>",
             f"<table id=audit><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>",
             f"<p class=muted>{_e(DEFINITIONS)} System 1 is {_e(audit['system1'])}.</p>"]
    for entry in audit["variants"]:
        parts.append(f"<h3>{_e(entry['variant'])}: threshold curve</h3>")
        if not entry["curves"]:
            parts.append(f"<p class=muted>No threshold curve: {_e(entry['no_curve'])}.</p>")
        for curve in entry["curves"]:
            parts.append(curve_svg(curve, entry["variant"]))
        parts.append(_examples_html(entry))
    return "".join(parts)


def curve_svg(curve: Mapping[str, Any], variant: str) -> str:
    """Precision (green) and coverage (blue) against the threshold, the recipe's threshold a red line."""
    points = curve["points"]
    W, H, L, R, T, B = 460, 250, 44, 16, 26, 40
    lo, hi = points[0]["threshold"], points[-1]["threshold"]
    span = (hi - lo) or 1.0
    X = lambda v: L + (v - lo) / span * (W - L - R)  # noqa: E731
    Y = lambda s: T + (1 - s) * (H - T - B)  # noqa: E731
    svg = [f"<svg class='chart curve' width='{W}' height='{H}' data-variant='{_e(variant)}' data-setting='{_e(curve['setting'])}' "
           f"role='img' aria-label='precision and coverage against {_e(curve['setting'])}'>"]
    for s in (0, 0.25, 0.5, 0.75, 1.0):
        svg.append(f"<line x1='{L}' x2='{W - R}' y1='{Y(s):.1f}' y2='{Y(s):.1f}' stroke='#eef0f4'/>"
                   f"<text x='{L - 6}' y='{Y(s) + 4:.1f}' text-anchor='end'>{round(100 * s)}%</text>")
    ticks = [p["threshold"] for p in points] if len(points) <= 9 else [lo, hi, curve["chosen"]]
    for v in sorted(set(ticks)):
        svg.append(f"<text x='{X(v):.1f}' y='{H - B + 14}' text-anchor='middle'>{v:g}</text>")
    svg.append(f"<text x='{(L + W - R) / 2}' y='{H - 6}' text-anchor='middle'>{_e(curve['filter'])}: {_e(curve['setting'])}</text>")
    svg.append(f"<line class='chosen' x1='{X(curve['chosen']):.1f}' x2='{X(curve['chosen']):.1f}' y1='{T}' y2='{H - B}' "
               f"stroke='#c8453b' stroke-dasharray='4 3'><title>the recipe's {_e(curve['setting'])}: "
               f"{curve['chosen']:g}</title></line>")
    for key, colour in (("precision", "#2e9b57"), ("coverage", "#3b78c4")):
        shown = [p for p in points if p[key] is not None]
        if shown:
            svg.append(f"<polyline class='{key}' fill='none' stroke='{colour}' stroke-width='2' points='"
                       + " ".join(f"{X(p['threshold']):.1f},{Y(p[key]):.1f}" for p in shown) + "'/>")
        for p in shown:
            svg.append(f"<circle cx='{X(p['threshold']):.1f}' cy='{Y(p[key]):.1f}' r='{4 if p['chosen'] else 2.5}' "
                       f"fill='{colour}'><title>{_e(curve['setting'])} {p['threshold']:g}: {key} {pct(p[key])}"
                       f"{' (the recipe)' if p['chosen'] else ''}</title></circle>")
    svg.append(f"<text class='lbl' x='{L}' y='12' fill='#2e9b57'>— precision of kept answers</text>"
               f"<text class='lbl' x='{L + 190}' y='12' fill='#3b78c4'>— coverage</text>"
               f"<text class='lbl' x='{L + 270}' y='12' fill='#c8453b'>- - the recipe's</text>")
    return "".join(svg) + "</svg>"


def _examples_html(entry: Mapping[str, Any]) -> str:
    parts = []
    for kind, says in (("rescued", "System 1 wrong, the kept answer right"), ("poisoned", "a kept answer wrong")):
        shown = entry["examples"][kind]
        total = entry[kind]
        if not shown:
            parts.append(f"<p class=muted>{kind.capitalize()} ({says}): none.</p>")
            continue
        rows = "".join(f"<tr><td>{_e(x['id'])}</td><td>{_e(x['question'])}</td><td>{_e(', '.join(map(str, x['kept'])))}</td>"
                       f"<td>{_e(x['label'])}</td><td>{_e(x['system1'] if x['system1'] is not None else '(no answer)')}</td></tr>"
                       for x in shown)
        parts.append(f"<p><b>{kind.capitalize()}</b> ({says}): {total}; the first {len(shown)}:</p>"
                     f"<table class='audit-examples {kind}'><thead><tr><th>id</th><th>input</th><th>kept answer</th>"
                     f"<th>label</th><th>System 1</th></tr></thead><tbody>{rows}</tbody></table>")
    return "".join(parts)
