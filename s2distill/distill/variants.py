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

Three controls a distillation result must beat before anyone believes it, each trained answer only
(s2distill/distill/controls.py says how their targets are built, and why so):

- `gold` (the ceiling): the inputs the recipe's own curation kept, with each one's train label as
  the target; the only difference from `distilled` is whether each target is right.
- `self_samples` (SSD, "simple self-distillation", arXiv 2604.01193): the student's own System 1
  samples, one per input at a training temperature, unfiltered.
- `random_targets` (the floor): the kept inputs, each with another kept input's distilled target
  under a seeded permutation: as many pairs, the same answers, none matched to its input.

One variant changes how the student learns, not what from:

- `soft_labels` (context distillation, s2distill/distill/soft.py): `distilled`'s kept inputs and
  pairs, each target's tokens weighted by a teacher model's next-token distribution when it reads
  the kept System 2 trace beside the question (`distill.soft`); the student still reads the bare
  question.
"""

from __future__ import annotations

from dataclasses import dataclass

from s2distill.curation.filters import NoFilter

SYSTEM1_SOURCE = "system1"
# `self_samples` when the first teacher is greedy: the student's System 1 sampled once per input at
# SSD_TEMPERATURE (RunContext.source). A name no teacher may take (config/recipe.py reserves it).
SSD_SOURCE = "system1_ssd"
# The training temperature `self_samples` samples at when the recipe's first teacher samples at none
# (temperature 0): a common sampling temperature, 0.7, chosen here and not taken from arXiv
# 2604.01193, whose settings were not at hand. A first teacher's own temperature, when it has one,
# is used instead, so that `distill_system1` and `self_samples` read one System 1 samples artifact.
SSD_TEMPERATURE = 0.7

# What the report says a control is, beside its name (Row.control).
CONTROL_LABELS = {"gold": "gold labels (ceiling)", "self_samples": "own samples, unfiltered (SSD)",
                  "random_targets": "random targets (floor)"}
# What the report says the other variants with a role of their own are (Row.control too).
VARIANT_LABELS = {**CONTROL_LABELS, "soft_labels": "soft labels (context distillation)"}


@dataclass(frozen=True)
class Variant:
    """One distillation a run trains. `kept_by`: a control that trains on the inputs another
    variant's curation kept (that variant's verdicts, not a curation of its own); `targets`: where
    its training targets come from: its kept outputs ("outputs"), the train labels ("gold"), or
    other kept inputs' targets ("random_targets")."""

    name: str
    sources: tuple[str, ...]  # teacher names, or SYSTEM1_SOURCE / SSD_SOURCE
    filters: tuple  # curation filter configs, applied in turn
    first_sample_only: bool
    stages: tuple[str, ...]
    kept_by: Variant | None = None
    targets: str = "outputs"
    soft: bool = False  # trained on a teacher's distribution over its targets' tokens (distill/soft.py)

    @property
    def label(self) -> str | None:
        """What the report says this variant is, when it is a control or soft_labels (None otherwise)."""
        return VARIANT_LABELS.get(self.name)

    @property
    def curated(self) -> Variant:
        """The variant whose curation this one trains on: its own, or `kept_by`'s."""
        return self.kept_by or self

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
                   "tinyllm": ("full_reasoning",), "distilling_step_by_step": ("step_by_step",),
                   "gold": ("answer_only",), "self_samples": ("answer_only",), "random_targets": ("answer_only",)}


def variant_stages(name: str, recipe_stages: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The training stages of variant `name` in a recipe whose `distill.stages` are `recipe_stages`
    (what `predict` reads to find a run's last stage without loading the whole recipe). A recipe that
    trains on whole responses (`[full_response]`, the paper profiles' RaR) gives `distill_system1`
    whole responses too: Yu et al.'s "Distill System 1" is trained on System 1's majority response
    as their distilled RaR is on RaR's (Table 1 counts 24-30 generated tokens for it)."""
    if name == "distill_system1" and tuple(recipe_stages) == ("full_response",):
        return ("full_response",)
    if name in ("gold", "random_targets") and tuple(recipe_stages)[-1:] == ("label_only",):
        return ("label_only",)  # the controls' targets in the form `distilled` ends on (BSM's verdict)
    return BASELINE_STAGES.get(name, tuple(recipe_stages))


def self_samples_source(recipe) -> str:
    """Where `self_samples` reads the student's own samples: the System 1 samples `distill_system1`
    reads too (sampled like the first teacher), or, when the first teacher is greedy, SSD_SOURCE
    (sampled at SSD_TEMPERATURE): SSD samples at a training temperature, never greedily."""
    return SYSTEM1_SOURCE if recipe.teachers[0].temperature > 0 else SSD_SOURCE


def sampled_once(variants: list[Variant], source: str) -> bool:
    """Whether a System 1 source is sampled once per input: every variant reading it reads its first
    sample alone (`self_samples` without `distill_system1`), so the first teacher's N samples per
    input would be N - 1 wasted. A teacher's `samples` is the recipe's own word and is never cut."""
    readers = [v for v in variants if source in v.sources]
    return source in (SYSTEM1_SOURCE, SSD_SOURCE) and bool(readers) and all(v.first_sample_only for v in readers)


def plan_variants(recipe) -> list[Variant]:
    teachers = tuple(t.name for t in recipe.teachers)
    stages = tuple(recipe.distill.stages)
    filters, none = tuple(recipe.curation.filter), (NoFilter(),)
    distilled = Variant("distilled", teachers, filters, False, stages)
    variants = []
    if "distilled" in recipe.evaluate.systems:
        variants.append(distilled)
    for name in recipe.baselines:
        if name == "distill_system1":
            variants.append(Variant(name, (SYSTEM1_SOURCE,), filters, False, variant_stages(name, stages)))
        elif name in ("standard_kd", "no_filter", "tinyllm", "distilling_step_by_step"):
            variants.append(Variant(name, teachers, none, True, variant_stages(name, stages)))
        elif name == "self_samples":  # SSD: one sample per input, no filter (an unparseable one has no target)
            variants.append(Variant(name, (self_samples_source(recipe),), none, True, variant_stages(name, stages)))
        elif name in ("gold", "random_targets"):  # the distilled variant's kept inputs, other targets
            variants.append(Variant(name, teachers, filters, False, variant_stages(name, stages),
                                    kept_by=distilled, targets=name))
        elif name == "soft_labels":  # the distilled variant's pairs, soft targets
            variants.append(Variant(name, teachers, filters, False, stages, kept_by=distilled, soft=True))
    return variants
