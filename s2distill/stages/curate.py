"""The curation stage: a variant's filters over its sources' outputs, one verdict per input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from s2distill.configbase import identity
from s2distill.curation.filters import FilterInputs, compose
from s2distill.methods.usc import composition_program
from s2distill.stages.context import RunContext, sampling_identity
from s2distill.stages.folder import VERDICTS, Done
from s2distill.types import Example, Trace
from s2distill.variants import Variant

SampleSet = Mapping[tuple[str, bool], Done]  # (source, perturbed) -> its samples stage


def variant_traces(variant: Variant, samples: SampleSet, *, perturbed: bool = False) -> list[Trace]:
    """The outputs a variant curates: its sources' samples (only sample 0 for the baselines that say so)."""
    traces = [t for name in variant.sources for t in samples[(name, perturbed)].value]
    return [t for t in traces if t.sample == 0] if variant.first_sample_only else traces


def by_input(examples: Sequence[Example], traces: Sequence[Trace]) -> dict[str, list[Trace]]:
    """Traces grouped by input, in the inputs' order (every input present, even with no trace)."""
    grouped: dict[str, list[Trace]] = {e.id: [] for e in examples}
    for trace in traces:
        grouped[trace.example_id].append(trace)
    return grouped


def curate_stage(ctx: RunContext, variant: Variant, inputs: Done, samples: SampleSet) -> Done:
    """`curation/verdicts.jsonl` (the recipe's own variant) or `curation/VARIANT.jsonl`."""
    examples = inputs.value
    used = [(name, False) for name in variant.sources] + [(name, True) for name in variant.sources
                                                           if variant.needs_perturbed]
    judges = [ctx.recipe.teacher(f.judge) for f in variant.filters if f.needs_judge]

    def compose_with_judge(grouped) -> dict[str, Trace]:
        """Universal self-consistency: the judge teacher's model composes each input's final answer
        from its outputs (Figure 12 of Yu et al. 2024); a program run like any other."""
        judge, usc = judges[0], next(f for f in variant.filters if f.needs_judge)
        program = composition_program(ctx.task, grouped, prompt_format=judge.method.prompt_format,
                                      max_chars=usc.usc_max_chars)
        todo = [e for e in examples if e.id in grouped]
        traces = ctx.run(f"USC composition ({judge.name})", program, todo, ctx.models.get(judge.model), temperature=0.0)
        return {t.example_id: t for t in traces}

    def compute():
        from s2distill.embed import load_embedder

        filter_inputs = FilterInputs(
            normalize=ctx.task.normalize, map_back=ctx.task.map_back,
            perturbed=lambda: by_input(examples, variant_traces(variant, samples, perturbed=True)),
            compose=compose_with_judge, embed=load_embedder,
        )
        verdicts = compose(variant.filters, filter_inputs)(by_input(examples, variant_traces(variant, samples)))
        ctx.console.print(f"  {variant.name}: {variant.filter} kept {sum(v.kept for v in verdicts)} of {len(verdicts)} inputs")
        return verdicts

    artifact = "curation/verdicts.jsonl" if variant.name == "distilled" else f"curation/{variant.name}.jsonl"
    return ctx.folder.stage(
        f"curation:{variant.name}", artifact, codec=VERDICTS, compute=compute,
        made_from={"filters": [identity(f) for f in variant.filters], "first_sample_only": variant.first_sample_only,
                   "judges": [sampling_identity(j) | {"name": j.name} for j in judges],
                   "task": ctx.prompt_settings(),
                   "inputs": {f"samples:{n}{'.perturbed' if p else ''}": samples[(n, p)].fingerprint for n, p in used}},
    )
