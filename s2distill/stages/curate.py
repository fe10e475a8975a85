"""The curation stage: a variant's filters over its sources' outputs, one verdict per input.

Every filter decides per input, so curation reads the samples artifacts input by input
(stages/outputs.py) and hands the filters `CHUNK` inputs at a time: its verdicts are written as
they come and memory stays flat in the number of inputs. A chunk of many inputs rather than one
keeps USC's compositions batched (the judge's calls for a chunk's inputs go to the model together).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from s2distill.curation.filters import FilterInputs, compose
from s2distill.methods.usc import composition_program
from s2distill.progress import ProgressBar
from s2distill.stages.context import RunContext
from s2distill.stages.folder import VERDICTS, Done
from s2distill.stages.specs import CurateSpec
from s2distill.stages.outputs import Outputs, SampleSet
from s2distill.types import Example, Trace, Verdict
from s2distill.distill.variants import Variant

CHUNK = 1024  # inputs a filter sees at once (at least 8 × workers: USC's batches stay full)


def variant_traces(variant: Variant, samples: SampleSet, *, perturbed: bool = False) -> Outputs:
    """The outputs a variant curates: its sources' samples (only sample 0 for the baselines that say
    so), read from their artifacts each time they are iterated."""
    return Outputs(variant, samples, perturbed)


def curate_stage(ctx: RunContext, variant: Variant, inputs: Done, samples: SampleSet) -> Done:
    """`curation/verdicts.jsonl` (the recipe's own variant) or `curation/VARIANT.jsonl`."""
    examples = inputs.value
    used = [(name, False) for name in variant.sources] + [(name, True) for name in variant.sources
                                                           if variant.needs_perturbed]
    spec = CurateSpec(filters=variant.filters, first_sample_only=variant.first_sample_only,
                      judges=[ctx.recipe.teacher(f.judge) for f in variant.filters if f.needs_judge],
                      task=ctx.prompt_settings())
    judges = spec.judges
    size = max(CHUNK, 8 * ctx.workers)

    def compose_with_judge(chunk: Sequence[Example], grouped, advance) -> dict[str, Trace]:
        """Universal self-consistency: the judge teacher's model composes each input's final answer
        from its outputs (Figure 12 of Yu et al. 2024); a program run like any other."""
        judge, usc = judges[0], next(f for f in spec.filters if f.needs_judge)
        program = composition_program(ctx.task, grouped, prompt_format=judge.method.prompt_format,
                                      max_chars=usc.usc_max_chars, max_tokens=usc.usc_max_tokens)
        todo = [e for e in chunk if e.id in grouped]
        traces = ctx.run(f"USC composition ({judge.name})", program, todo, ctx.models.get(judge.model),
                         advance=advance, temperature=0.0)
        for _ in range(len(chunk) - len(todo)):  # dropped by an earlier filter: not composed, but done
            advance()
        return {t.example_id: t for t in traces}

    def verdicts(advance) -> Iterator[Verdict]:
        """The filters over each chunk of inputs (with, for the perturbation filter, the same
        chunk's outputs on the perturbed inputs)."""
        from s2distill.curation.embed import load_embedder

        ids = [e.id for e in examples]
        kept = total = 0
        perturbed = Outputs(variant, samples, perturbed=True).chunks(ids, size) if variant.needs_perturbed else None
        start = 0
        for grouped in Outputs(variant, samples).chunks(ids, size):
            chunk, start = examples[start:start + len(grouped)], start + len(grouped)
            other = next(perturbed) if perturbed is not None else None
            filter_inputs = FilterInputs(normalize=ctx.task.normalize, map_back=ctx.task.map_back,
                                         perturbed=lambda other=other: other,
                                         compose=lambda g, chunk=chunk: compose_with_judge(chunk, g, advance),
                                         embed=load_embedder)
            for verdict in compose(spec.filters, filter_inputs)(grouped):
                kept, total = kept + verdict.kept, total + 1
                yield verdict
        if perturbed is not None:
            next(perturbed, None)  # its artifact read to the end: a row out of order is an error
        ctx.console.print(f"  {variant.name}: {variant.filter} kept {kept} of {total} inputs")

    def compute() -> Iterator[Verdict]:
        if not judges:
            yield from verdicts(None)
            return
        with ProgressBar(f"USC composition ({judges[0].name})", len(examples), ctx.console,
                         enabled=ctx.show_progress) as advance:
            yield from verdicts(advance)

    artifact = "curation/verdicts.jsonl" if variant.name == "distilled" else f"curation/{variant.name}.jsonl"
    return ctx.stage(f"curation:{variant.name}", artifact, spec=spec, codec=VERDICTS, compute=compute,
                     inputs={f"samples:{n}{'.perturbed' if p else ''}": samples[(n, p)] for n, p in used})
