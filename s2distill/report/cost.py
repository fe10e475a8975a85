"""What the teachers cost: tokens per teacher and per stage, their price, and the price of a kept example.

For a hosted teacher the teacher's bill is the cost of distillation, and the figure a user weighs
is not the bill itself but what one **kept** training example cost: the samples of every input,
the dropped ones included, over the inputs curation kept.

Per teacher, each stage that called it has its tokens counted from its artifacts (the tokens it
took to produce them, whether this invocation paid for them or replayed them from the cache):

- `samples:NAME` and `samples:NAME.perturbed`: every call of every sampled output;
- `eval:system2-NAME` (and `@SPLIT` for each transfer split): its evaluation on the test split(s).

Prompt tokens a provider served from its prompt cache are counted apart (`cached_prompt_tokens`,
from the server's `usage.prompt_tokens_details.cached_tokens`). When the recipe prices a teacher
(`teacher.price`), each stage is priced as

    (uncached prompt × prompt + cached prompt × prompt × cached_prompt_multiplier
     + generated × completion) / 1e6 × (batch_multiplier when the teacher's model sets `batch`)

Both multipliers are the recipe's (providers differ: a cached prompt token costs 0.1 to 0.5 of
an uncached one, a batch request 0.5 of a live one), and they compound: a cached prompt token of
a batched request costs prompt × both. USC selections and HaRD rewrites are not kept per call,
so they are not counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2distill.artifacts import iter_jsonl

TOKENS = ("prompt_tokens", "cached_prompt_tokens", "completion_tokens")


def teacher_spend(out: Path, teachers, curation: list[dict] | tuple = ()) -> dict[str, Any]:
    """Each teacher's tokens (and money, when priced) per stage and in all; with the curation
    summaries, what each variant paid per kept input (`per_kept_example`)."""
    result: dict[str, Any] = {}
    total_usd, priced = 0.0, False
    for teacher in teachers:
        stages = {stage: _spend(records, calls=calls) for stage, records, calls in _artifacts(out, teacher.name)}
        price = getattr(teacher, "price", None)
        batched = getattr(getattr(teacher, "model", None), "batch", None) is not None
        if price is not None:
            for spend in stages.values():
                spend["usd"] = priced_usd(spend, price, batched=batched)
        samples = _sum(s for name, s in stages.items() if name.startswith("samples:"))
        evaluation = _sum(s for name, s in stages.items() if name.startswith("eval:"))
        spend = {"outputs": samples["outputs"], **{k: samples[k] for k in TOKENS},
                 **{f"evaluation_{k}": evaluation[k] for k in TOKENS if evaluation["outputs"]},
                 "batched": batched, "stages": stages}
        if price is not None:
            spend["samples_usd"] = round(samples["usd"], 6)
            spend["usd"] = round(samples["usd"] + evaluation["usd"], 6)
            total_usd += spend["usd"]
            priced = True
        result[teacher.name] = spend
    return {"teachers": result, "total_usd": round(total_usd, 6) if priced else None,
            "per_kept_example": per_kept_example(result, curation)}


def priced_usd(spend: dict, price, *, batched: bool) -> float:
    """The money of one stage's tokens at `price` (see the module docstring)."""
    cached = spend.get("cached_prompt_tokens", 0)
    uncached = spend["prompt_tokens"] - cached
    usd = (uncached * price.prompt + cached * price.prompt * price.cached_prompt_multiplier
           + spend["completion_tokens"] * price.completion) / 1e6
    return round(usd * (price.batch_multiplier if batched else 1.0), 6)


def per_kept_example(teachers: dict[str, dict], curation) -> dict[str, dict]:
    """Per curated variant: the samples' tokens (and money) of its teachers over the inputs it kept.
    The student's own samples (`system1` sources) cost no teacher and are not counted."""
    out = {}
    for summary in curation or ():
        sources = [name for name in summary.get("per_teacher", {}) if name in teachers]
        if not sources:
            continue
        kept = summary["kept"]
        tokens = sum(teachers[name]["prompt_tokens"] + teachers[name]["completion_tokens"] for name in sources)
        row = {"sources": sources, "kept_inputs": kept, "inputs": summary["inputs"],
               "kept_outputs": sum(summary["per_teacher"][name]["kept"] for name in sources),
               "tokens": tokens, "tokens_per_kept_input": round(tokens / kept, 1) if kept else None}
        if all("samples_usd" in teachers[name] for name in sources):
            usd = sum(teachers[name]["samples_usd"] for name in sources)
            row.update(usd=round(usd, 6), usd_per_kept_input=round(usd / kept, 8) if kept else None)
        out[summary["variant"]] = row
    return out


def _artifacts(out: Path, name: str):
    """(stage, rows, whether rows are traces with calls) of every artifact a teacher's calls made."""
    for suffix in ("", ".perturbed"):
        path = out / "samples" / f"{name}{suffix}.jsonl"
        if path.exists():
            yield f"samples:{name}{suffix}", iter_jsonl(path), True
    evaluations = [out / "eval" / f"system2-{name}.jsonl", *sorted((out / "eval").glob(f"system2-{name}@*.jsonl"))]
    for path in evaluations:
        if path.exists():
            yield f"eval:{path.stem}", iter_jsonl(path), False


def _spend(rows, *, calls: bool) -> dict[str, int]:
    """Outputs and tokens of a samples artifact (its calls' usage) or an evaluation's records."""
    spend = {"outputs": 0, **dict.fromkeys(TOKENS, 0)}
    for row in rows:
        spend["outputs"] += 1
        for usage in ([call["usage"] for call in row.get("calls", [])] if calls else [row]):
            for key in TOKENS:
                spend[key] += usage.get(key) or 0
    return spend


def _sum(spends) -> dict[str, float]:
    total = {"outputs": 0, **dict.fromkeys(TOKENS, 0), "usd": 0.0}
    for spend in spends:
        for key in total:
            total[key] += spend.get(key, 0)
    return total


def spend_rows(cost: dict) -> list[dict]:
    """One row per teacher and stage, as report.md and report.html show them: the teacher, the
    stage, outputs, prompt, cached prompt and generated tokens, and money (None unpriced)."""
    rows = []
    for teacher, spend in (cost.get("teachers") or {}).items():
        for stage, figures in (spend.get("stages") or {}).items():
            rows.append({"teacher": teacher, "stage": stage, "batched": spend.get("batched", False),
                         **{k: figures.get(k, 0) for k in ("outputs", *TOKENS)}, "usd": figures.get("usd")})
    return rows


def money_text(row: dict) -> str:
    """A spend row's money as the tables show it: `$0.0013 (batch)`, or a dash when unpriced."""
    if row["usd"] is None:
        return "—"
    return f"${row['usd']:.4f}" + (" (batch)" if row["batched"] else "")


def kept_lines(cost: dict) -> list[str]:
    """A sentence per variant on what one kept input cost."""
    lines = []
    for variant, row in (cost.get("per_kept_example") or {}).items():
        if not row["kept_inputs"]:
            lines.append(f"{variant}: no input kept, {row['tokens']:,} teacher tokens spent on samples")
            continue
        money = f", ${row['usd_per_kept_input']:.6f}" if row.get("usd_per_kept_input") is not None else ""
        lines.append(f"{variant}: {row['tokens_per_kept_input']:,.1f} teacher tokens{money} per kept input "
                     f"({row['kept_inputs']:,} of {row['inputs']:,} inputs kept, {row['kept_outputs']:,} outputs)")
    return lines
