"""The report: System 1, System 2 and distilled System 1 side by side, score and tokens."""

from __future__ import annotations

import os
import platform
from typing import Any


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:
        pass
    return info


def render_markdown(report: dict[str, Any]) -> str:
    """report.json as a page a person reads: the table first, then how it was obtained."""
    lines = [f"# s2distill report: {report['name']}", ""]
    lines += [
        f"Task **{report['task']}**, test split n={report['rows'][0]['n'] if report['rows'] else 0}. "
        f"Teacher: `{report['teacher']}`; student: `{report['student']}`.",
        "",
        "| system | method | model | " + (report["rows"][0]["metric"] if report["rows"] else "score") + " | n | unparseable | generated tokens / example |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['system']} | {row['method']} | {row['model']} | {100 * row['score']:.1f}% | {row['n']} "
            f"| {row['unparseable']} | {row['tokens_per_example']:.1f} |"
        )
    cur = report["curation"]
    lines += [
        "",
        f"**Curation** ({cur['filter']}, {cur['samples']} samples per input, keep when the top answer's share > "
        f"{cur['min_fraction']:g}): kept **{cur['kept']} of {cur['inputs']}** unlabeled inputs. "
        "Per-input verdicts: `curation/verdicts.jsonl`.",
        "",
        f"**LM calls this invocation**: {report['lm']['calls']} completions generated, {report['lm']['cached']} served from the cache"
        + (
            "; server faults retried: " + ", ".join(f"{k} ×{v}" for k, v in sorted(report["lm"]["faults"].items())) + "."
            if report["lm"].get("faults") else "."
        ),
        "",
        "**Wall time per stage** (seconds, when the stage ran): "
        + ", ".join(f"{k} {v:.0f}" for k, v in report["timings"].items())
        + f"; stages total {sum(report['timings'].values()):.0f} s. This invocation: {report['invocation_seconds']:.0f} s "
        "(model loading included).",
        "",
        "**Machine**: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()),
        "",
        "Tokens are completion tokens the model generated per test example, summed over every call a "
        "method makes; prompt tokens are not counted. Scores are exact match against the labels, which "
        "only evaluation reads.",
    ]
    return "\n".join(lines) + "\n"
