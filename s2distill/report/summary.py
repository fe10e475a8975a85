"""The report: System 1, each teacher's System 2 and every distilled student side by side, score and
tokens, with what curation kept per teacher."""

from __future__ import annotations

import os
import platform
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from s2distill.curation.filters import FILTER_CLASSES
from s2distill.report.audit import audit_lines
from s2distill.report.cascade import cascade_lines
from s2distill.report.cost import kept_lines, money_text, spend_rows
from s2distill.report.training import training_lines
from s2distill.report.row import Row, rows_of
from s2distill.types import Verdict


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
        from s2distill.hardware import available_cores, cpu_capability, fast_bf16, fast_int8

        info["cpu_capability"] = cpu_capability()
        info["cpu_bf16"] = fast_bf16("cpu")
        info["cpu_int8"] = fast_int8()
        info["threads"] = available_cores()
    except ImportError:
        pass
    return info


def curation_summary(variant, verdicts: Iterable[Verdict], outputs: Iterable[tuple]) -> dict[str, Any]:
    """What a variant's filter kept: inputs overall, and outputs per teacher (source). `verdicts`
    and `outputs` ((teacher, parseable?, failed?, truncated?) of each output the variant curates:
    `Outputs.tallies`) are each read once, as they come. A teacher with failed samples (refused, or
    its user program failed) has their count as `failed`; one with samples cut at their budget
    (kept out of curation, never a target) has their count as `truncated`."""
    kept, inputs, kept_inputs, cut_compositions = Counter(), 0, 0, 0
    for verdict in verdicts:
        inputs += 1
        cut_compositions += bool(verdict.meta.get("composition_truncated"))  # USC's judge cut at its budget
        if verdict.kept:
            kept_inputs += 1
            kept.update(ref.teacher for ref in verdict.kept_outputs)
    counted, parsed, failed, truncated = Counter(), Counter(), Counter(), Counter()
    for name, parseable, *flags in outputs:
        was_failed, was_cut = (list(flags) + [False, False])[:2]
        counted[name] += 1
        parsed[name] += parseable
        failed[name] += bool(was_failed)
        truncated[name] += bool(was_cut)
    settings = {}  # each filter's settings, as the report shows them (`min_fraction`, `threshold`, ...)
    for f in variant.filters:
        settings.update(f.model_dump(exclude={"name"}))
    return {
        "variant": variant.name, "filter": variant.filter, **settings,
        "first_sample_only": variant.first_sample_only,
        "inputs": inputs, "kept": kept_inputs,
        **({"compositions_truncated": cut_compositions} if cut_compositions else {}),
        "per_teacher": {name: {"outputs": counted[name], "parseable": parsed[name], "kept": kept[name],
                               **({"failed": failed[name]} if failed[name] else {}),
                               **({"truncated": truncated[name]} if truncated[name] else {})}
                        for name in variant.sources},
    }


def row_detail(row: Row | Mapping[str, Any]) -> str:
    """A row's teacher or stage, its maj@k and its test split, as the report tables show them (`Row.detail`)."""
    return rows_of([row])[0].detail


def row_method(row: Row | Mapping[str, Any]) -> str:
    """A row's method with its shots (`direct, 0-shot`), as the report tables show it (`Row.method_label`)."""
    return rows_of([row])[0].method_label


def _table(rows: list[Row]) -> list[str]:
    metric = rows[0].metric if rows else "score"
    extra = list(dict.fromkeys(k for row in rows for k in row.metrics))  # the task's own columns
    lines = [
        f"| system | teacher / stage | method | model | {metric} | " + "".join(f"{k} | " for k in extra)
        + "n | unparseable | truncated | generated tokens / example | prompt tokens / example | examples / s |",
        "|---|---|---|---|---:|" + "---:|" * len(extra) + "---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        head = f"| {row.system_label} | {row.detail} | {row.method_label} | {row.model} |"
        if row.score is None:
            lines.append(f"{head} — ({row.note}) | " + "| " * len(extra) + "0 | | | | | |")
            continue
        values = "".join(f"{_metric_cell(k, row.metrics.get(k))} | " for k in extra)
        lines.append(
            f"{head} {100 * row.score:.1f}% | {values}{row.n} | {row.unparseable} | {row.truncated} "
            f"| {_optional(row.tokens_per_example, '.1f')} | {_optional(row.prompt_tokens_per_example, '.1f')} "
            f"| {_optional(row.examples_per_second, '.2f')} |"
        )
    return lines


def _optional(value: float | None, fmt: str) -> str:
    """A cost figure, or a dash for rows evaluated before it was recorded."""
    return "—" if value is None else format(value, fmt)


def _metric_cell(name: str, value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f}" if name == "pairs" else f"{100 * value:.1f}%"


def _stage_lines(stages: dict | None) -> list[str]:
    """Which stages this invocation ran, and why (the others were current and kept)."""
    if not stages:
        return []
    counts = stages["this_invocation"]
    head = f"**Stages this invocation**: {counts['kept']} kept, {counts['computed']} computed, {counts['redone']} redone"
    redone = [f"{r['name']} ({r['reason']})" for r in stages["ran"] if r["status"] == "redone"]
    return [head + (": " + "; ".join(redone) if redone else "") + ".", ""]


FILTER_SETTINGS = {name for cls in FILTER_CLASSES for name in cls.model_fields if name != "name"}


def _curation_lines(summaries: list[dict]) -> list[str]:
    if not summaries:
        return ["(No curation: this run trains no student.)"]
    lines = ["## Curation", "", "| variant | filter | inputs kept | teacher | outputs | parseable | outputs kept "
             "| truncated |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for cur in summaries:
        settings = ", ".join(f"{k} {v}" for k, v in cur.items() if k in FILTER_SETTINGS and v is not None)
        scope = "first sample" if cur["first_sample_only"] else "all samples"
        for i, (name, counts) in enumerate(cur["per_teacher"].items()):
            head = (f"| {cur['variant']} | {cur['filter']} ({scope}{', ' + settings if settings else ''}) "
                    f"| {cur['kept']} of {cur['inputs']} ") if i == 0 else "| | | "
            lines.append(head + f"| {name} | {counts['outputs']} | {counts['parseable']} | {counts['kept']} "
                                f"| {counts.get('truncated', 0)} |")
    lines += ["", "Per-input verdicts, with the reason and the kept outputs: `curation/*.jsonl`. Truncated outputs "
              "(a call cut at its `max_tokens` budget) are never kept nor counted as parseable."]
    failed: dict[str, tuple[int, int]] = {}  # per teacher, from the variant that curates most of its outputs
    for cur in summaries:
        for name, counts in cur["per_teacher"].items():
            if counts.get("failed") and counts["outputs"] > failed.get(name, (0, 0))[1]:
                failed[name] = (counts["failed"], counts["outputs"])
    if failed:
        lines += ["", "**Failed samples** (no output: refused by the server, or the user's program failed; the reason "
                  "is each sample's `error` in `samples/*.jsonl`): "
                  + ", ".join(f"{name} {n} of {total}" for name, (n, total) in failed.items()) + "."]
    return lines


def _cost_lines(report: dict[str, Any]) -> list[str]:
    """The teachers' spend per stage, what a kept input cost, and the versions, when report.json
    has them (report.html has more)."""
    lines = []
    cost = report.get("cost") or {}
    rows = spend_rows(cost)
    if rows:
        lines += ["", "**Teachers' spend** (the tokens each artifact took; money at the recipe's `teacher.price`):", "",
                  "| teacher | stage | outputs | prompt tokens | of them cached | generated tokens | cost |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for row in rows:
            lines.append(f"| {row['teacher']} | {row['stage']} | {row['outputs']:,} | {row['prompt_tokens']:,} | "
                         f"{row['cached_prompt_tokens']:,} | {row['completion_tokens']:,} | {money_text(row)} |")
        if cost.get("total_usd") is not None:
            lines += ["", f"Total: ${cost['total_usd']:.4f}."]
    kept = kept_lines(cost)
    if kept:
        lines += ["", "**Per kept training input**: " + "; ".join(kept) + "."]
    prov = report.get("provenance") or {}
    if prov.get("versions"):
        commit = f", git {prov['git_commit'][:12]}" + (" (modified)" if prov.get("git_dirty") else "") if prov.get("git_commit") else ""
        lines += ["", "**Versions**: " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()) + commit
                  + ". Data files' and weights' SHA256: report.json `provenance`."]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """report.json as a page a person reads: the table first, then how it was obtained (its rows
    as report.json holds them, or as `Row`s)."""
    rows = rows_of(report["rows"])
    lines = [f"# s2distill report: {report['name']}", ""]
    lines += [
        f"Task **{report['task']}**, test split n={rows[0].n if rows else 0}. "
        f"Teachers: `{report['teachers']}`; student: `{report['student']}`.",
        *([f"Token budgets: {'; '.join(f'`{b}`' for b in report['budgets'])}."] if report.get("budgets") else []),
        "",
        *_table(rows),
        "",
        *[f"**Note**: {note}\n" for note in report.get("notes") or []],
        *[f"**Truncated**: {line}.\n" for line in report.get("truncation") or []],
        *_curation_lines(report["curation"]),
        "",
        *(["**Training** (wall time of each trained step):", *[f"- {line}" for line in lines], ""]
          if (lines := training_lines(rows)) else []),
        *audit_lines(report),
        *cascade_lines(report),
        ("![score against tokens per example](report.png)" if report.get("plot") else
         "(No plot: matplotlib is not installed; `pip install -e '.[plot]'`.)"),
        "",
        f"**LM calls this invocation**: {report['lm']['calls']} completions generated, {report['lm']['cached']} served from the cache"
        + (
            "; server faults retried: " + ", ".join(f"{k} ×{v}" for k, v in sorted(report["lm"]["faults"].items())) + "."
            if report["lm"].get("faults") else "."
        ),
        *[f"- {model} on {url}: {r['calls']} calls, {r['ok']} answered, set aside {r['set_aside']}×"
          + (f", refused {r['refused']} (last: {r['last_refusal']})" if r.get("refused") else "")
          + (f", last error: {r['last_error']}" if r.get("last_error") else "")
          for model, servers in (report["lm"].get("replicas") or {}).items() for url, r in servers.items()],
        "",
        *_stage_lines(report.get("stages")),
        "**Wall time per stage** (seconds, when the stage ran): "
        + ", ".join(f"{k} {v:.0f}" for k, v in report["timings"].items())
        + f"; stages total {sum(report['timings'].values()):.0f} s. This invocation: {report['invocation_seconds']:.0f} s "
        "(model loading included).",
        "",
        "**Machine**: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()),
        *_cost_lines(report),
        "",
        *([f"**Model-written code runs behind**: {report['sandbox']}.", ""] if report.get("sandbox") else []),
        "Tokens are completion tokens the model generated per test example, summed over every call a "
        "method makes; prompt tokens (what the model read, every call) are their own column. Examples / s is "
        "the evaluation's throughput when it ran (a replay from the cache is faster). Truncated answers were cut at their "
        "`max_tokens` budget (maj@k: of its n × k samples). Scores are against the labels, which only "
        "evaluation reads. Distilled rows are the student after each training stage.",
    ]
    return "\n".join(lines) + "\n"
