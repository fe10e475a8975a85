"""The distillations one run trains: the recipe's own, and the baselines the seeds compare with.

Each variant names where its outputs come from (teachers, or the student's own System 1
samples), the filter over them, and its training stages:

- `distilled`: the recipe's teachers, filter and stages (one stage, or the HaRD curriculum).
- `distill_system1`: the same filter over the student's own System 1 samples, answer only
  (the System 2 distillation paper's "Distill System 1").
- `standard_kd`: each teacher's first sample, no filter, trained on the teacher's label alone (TwT's
  Standard KD, Section 4.1: "fine-tunes the student model using the teacher model's generated labels
  as ground-truth"; its Table 1 token counts, 5-10 on CQA and MetaMath, are answer-only).
- `no_filter`: the recipe's stages on each teacher's first sample, without the filter (the
  paper's ablation: what the filter is worth; Yu et al.'s "Distill S2A (no USC)", TwT's "w/o DCRS").
- `tinyllm`: every teacher's first sample, no filter, full reasoning: the rationales of several
  teachers for one input (TwT Table 1's TinyLLM baseline as TwT describes it, "distills diverse
  reasoning paths from multiple teacher LLMs into a student model"). An approximation of Tian et
  al. 2024: without its in-context example generator and teacher-forcing chain of thought.
- `distilling_step_by_step`: every teacher's first sample, no filter, as two tasks with task
  prefixes, "[label]" -> the answer and "[rationale]" -> the rationale, in one set; the student is
  then asked with "[label]" alone (Hsieh et al. 2023; TwT Table 1's "Distilling", "leverages
  LLM-generated rationales as additional supervision"). Unfiltered first samples as for TwT's other
  baselines; Hsieh et al. sample one teacher's few-shot CoT, which TwT does not describe further.
"""

from __future__ import annotations

from dataclasses import dataclass

from s2distill.curation.filters import NoFilter

SYSTEM1_SOURCE = "system1"


@dataclass(frozen=True)
class Variant:
    name: str
    sources: tuple[str, ...]  # teacher names, or SYSTEM1_SOURCE
    filters: tuple  # curation filter configs, applied in turn
    first_sample_only: bool
    stages: tuple[str, ...]

    @property
    def filter(self) -> str:
        """The filters' names, as the report shows them (`none` for no filter)."""
        return "+".join(f.name for f in self.filters)

    @property
    def needs_perturbed(self) -> bool:
        return any(f.needs_perturbed for f in self.filters)

    @property
    def needs_logprobs(self) -> bool:
        return any(f.needs_logprobs for f in self.filters)


# The training stages of each baseline with stages of its own (no_filter has the recipe's).
BASELINE_STAGES = {"distill_system1": ("answer_only",), "standard_kd": ("label_only",),
                   "tinyllm": ("full_reasoning",), "distilling_step_by_step": ("step_by_step",)}


def variant_stages(name: str, recipe_stages: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The training stages of variant `name` in a recipe whose `distill.stages` are `recipe_stages`
    (what `predict` reads to find a run's last stage without loading the whole recipe)."""
    return BASELINE_STAGES.get(name, tuple(recipe_stages))


def plan_variants(recipe) -> list[Variant]:
    teachers = tuple(t.name for t in recipe.teachers)
    stages = tuple(recipe.distill.stages)
    filters, none = tuple(recipe.curation.filter), (NoFilter(),)
    variants = []
    if "distilled" in recipe.evaluate.systems:
        variants.append(Variant("distilled", teachers, filters, False, stages))
    for name in recipe.baselines:
        if name == "distill_system1":
            variants.append(Variant(name, (SYSTEM1_SOURCE,), filters, False, variant_stages(name, stages)))
        elif name in ("standard_kd", "no_filter", "tinyllm", "distilling_step_by_step"):
            variants.append(Variant(name, teachers, none, True, variant_stages(name, stages)))
    return variants
