"""`s2distill run RECIPE --estimate N`: what a recipe will cost, from a pilot of N inputs, before the run.

The pilot runs the recipe's first stages only (the inputs, every source's samples, every
curation) on N training inputs, in `RUN/estimate/`, calling the teachers live (a batch could take
a day; the pilot's answers are cached, so the full run does not pay for them again). From the
pilot's artifacts it projects, per teacher and stage:

- `samples:NAME`: the pilot's tokens per input × the recipe's training inputs;
- `eval:system2-NAME`: the pilot's tokens per sample × the test inputs of every test split ×
  `evaluate.system2_samples` (the evaluation asks greedily; the pilot's sampled outputs stand in
  for its length), and the cascade's validation inputs when `evaluate.cascade` is set;

and prices them as the report does (report/cost.py: the recipe's prices, cache share and batch
multiplier), with the share of inputs each variant's curation kept in the pilot giving the cost
per kept input. It is a projection: a small pilot's length and kept share vary with the inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from s2distill.config.recipe import Recipe, RecipeError
from s2distill.report.cost import TOKENS, money_text, priced_usd, teacher_spend


def pilot_recipe(recipe: Recipe, inputs: int) -> Recipe:
    """The recipe on its first `inputs` training inputs at most, its teachers called live."""
    config = recipe.task
    if "train_size" not in type(config).model_fields:
        raise RecipeError(f"--estimate: task {config.name} has no train_size to draw a pilot with")
    size = config.train_size  # None: a user's file read whole
    task = config.model_copy(update={"train_size": min(inputs, size) if size else inputs})
    teachers = [t.model_copy(update={"model": t.model.model_copy(update={"batch": None})})
                if getattr(t.model, "batch", None) is not None else t for t in recipe.teachers]
    return recipe.model_copy(update={"task": task, "teachers": teachers})


def estimate(recipe: Recipe, out: Path, *, inputs: int, console: Console, progress: bool = True) -> dict[str, Any]:
    """Run the pilot into `out/estimate`, print the projection, and return it (also estimate.json)."""
    from s2distill.artifacts import write_json
    from s2distill.pipeline import Pipeline

    pilot = Pipeline(pilot_recipe(recipe, inputs), out / "estimate", console=console, progress=progress)
    summaries = pilot.curate_only()
    spent = teacher_spend(pilot.out, recipe.teachers, summaries)
    full = Pipeline.count_inputs(recipe)
    projection = project(recipe, spent, pilot_inputs=summaries[0]["inputs"] if summaries else inputs, **full)
    write_json(pilot.out / "estimate.json", projection)
    console.print(_table(projection))
    for line in projection["notes"]:
        console.print(f"  {line}", markup=False, highlight=False)
    return projection


def project(recipe: Recipe, spent: dict, *, pilot_inputs: int, train: int, test: int, validation: int) -> dict[str, Any]:
    """The full run's tokens and money per teacher and stage, scaled from the pilot's `spent`."""
    rows = []
    evaluations = test * recipe.evaluate.system2_samples + validation if "system2" in recipe.evaluate.systems else 0
    for teacher in recipe.teachers:
        spend = spent["teachers"].get(teacher.name, {})
        for stage, figures in (spend.get("stages") or {}).items():
            if not stage.startswith("samples:") or not figures["outputs"]:
                continue
            per_input = {k: figures[k] / pilot_inputs for k in TOKENS}
            per_sample = {k: figures[k] / figures["outputs"] for k in TOKENS}
            rows.append(_row(teacher, stage, train, figures["outputs"] * train / pilot_inputs, per_input))
            if not stage.endswith(".perturbed") and evaluations:
                rows.append(_row(teacher, f"eval:system2-{teacher.name}", evaluations, evaluations, per_sample))
    priced = all(getattr(teacher, "price", None) is not None for teacher in recipe.teachers)
    total_usd = sum(r["usd"] for r in rows if r["usd"] is not None)
    kept = {}
    for variant, row in (spent.get("per_kept_example") or {}).items():
        share = row["kept_inputs"] / row["inputs"] if row["inputs"] else 0.0
        samples_usd = sum(r["usd"] or 0.0 for r in rows if r["stage"].startswith("samples:") and r["teacher"] in row["sources"])
        projected = share * train
        kept[variant] = {"kept_share_in_pilot": round(share, 4), "kept_inputs": round(projected),
                         **({"usd_per_kept_input": round(samples_usd / projected, 8)} if priced and projected else {})}
    notes = [f"projected from a pilot of {pilot_inputs} inputs (its samples are cached: the full run does not pay "
             f"for them again); {train} training inputs, {test} test inputs"
             + (f", {validation} validation inputs" if validation else "")]
    if not priced:
        notes.append("no price for some teacher: set teacher.price {prompt, completion} (per million tokens) for money")
    return {"pilot_inputs": pilot_inputs, "train_inputs": train, "rows": rows,
            "total_usd": round(total_usd, 4) if priced else None, "per_kept_input": kept, "notes": notes}


def _row(teacher, stage: str, inputs: int, requests: float, per: dict) -> dict:
    tokens = {k: round(per[k] * inputs) for k in TOKENS}
    price = getattr(teacher, "price", None)
    batched = getattr(teacher.model, "batch", None) is not None
    usd = priced_usd(tokens, price, batched=batched) if price is not None else None
    return {"teacher": teacher.name, "stage": stage, "outputs": round(requests), **tokens, "usd": usd,
            "batched": batched}


def _table(projection: dict) -> Table:
    table = Table("teacher", "stage", "outputs", "prompt tokens", "of them cached", "generated tokens", "cost",
                  title=f"Projected from {projection['pilot_inputs']} pilot inputs")
    for row in projection["rows"]:
        table.add_row(row["teacher"], row["stage"], f"{row['outputs']:,}", f"{row['prompt_tokens']:,}",
                      f"{row['cached_prompt_tokens']:,}", f"{row['completion_tokens']:,}", money_text(row))
    if projection["total_usd"] is not None:
        table.add_row("total", "", "", "", "", "", f"${projection['total_usd']:.4f}")
    for variant, kept in projection["per_kept_input"].items():
        money = f"${kept['usd_per_kept_input']:.6f} per kept input" if "usd_per_kept_input" in kept else ""
        table.add_row(variant, "kept (pilot share)", f"{kept['kept_inputs']:,} ({100 * kept['kept_share_in_pilot']:.0f}%)",
                      "", "", "", money)
    return table
