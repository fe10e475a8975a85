"""What each distilled student's training cost, and how soft_labels' teacher stood to its targets:
one line per trained step, for report.md and report.html alike."""

from __future__ import annotations

from collections.abc import Iterable

from s2distill.report.row import Row


def training_lines(rows: Iterable[Row]) -> list[str]:
    """`distilled (answer_only): 152 s on 683 pairs`, and for soft_labels its teacher's pass and how
    often the teacher's most likely token was the hard target (rows of the recipe's own test
    split, greedy, with a training time)."""
    lines = []
    for row in rows:
        if row.train_seconds is None or row.test or row.majority_of:
            continue
        line = f"{row.system_label} ({row.stage}): {row.train_seconds:.0f} s on {row.train_pairs} pairs"
        soft = row.extra.get("soft_targets") or {}
        if soft.get("teacher_seconds") is not None:
            line += f", of which the teacher's distributions {soft['teacher_seconds']:.0f} s"
        if soft.get("tokens"):
            line += (f"; the teacher's most likely token is the target at {soft['teacher_top1_is_target']:.1%} of "
                     f"{soft['tokens']} target tokens, its mean probability of the target "
                     f"{soft['mean_target_probability']:.3f}")
        lines.append(line)
    return lines
