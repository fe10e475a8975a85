"""The threshold curve: precision and coverage of a filter at every threshold, from the samples
already paid for (issue 26, item 2).

A vote filter's `min_fraction`, DCRS's confidence `threshold` and the log-probability filter's
`min_mean_logprob` trade coverage (inputs kept) for precision (kept answers right). The curve
shows the whole trade on the user's own task, so the threshold can be chosen from it rather than
copied from a paper.

Each point is the real filter deciding again: the recipe's filters (`curation/filters.py`), with
the one threshold changed (`at_threshold`) and every other setting and filter of the chain as the
recipe has them, composed as curation composes them and run over the same outputs. No model is
called: a filter that needs one (USC's composition) has no curve. The candidate thresholds are
where some input's decision can change (`threshold_values`: every vote share k/N, every
confidence), thinned to `MAX_POINTS` evenly spaced ones when there are more, and always with the
recipe's own threshold, marked `chosen`. Since that point is the filter run again, the stage checks
it against curation's verdicts and says if they differ (`reproduced`).

Filters with no threshold (none, diverse_pair) have no curve; a chain with two thresholds (e.g.
[dual_criteria, self_consistency]) has a curve per threshold, the other held at the recipe's value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from s2distill.curation.audit import Judge, Tally
from s2distill.curation.filters import FilterInputs, compose
from s2distill.curation.truncation import masked
from s2distill.types import OutputRef, Trace, Verdict

MAX_POINTS = 41
Grouped = Mapping[str, Sequence[Trace]]
# A chunk of inputs' outputs, with the same inputs' outputs on their perturbed copies (or None)
Chunk = tuple[Grouped, Grouped | None]


def no_curve_reason(filters: Sequence) -> str | None:
    """Why a chain of filters has no curve (None: it has one per thresholded filter)."""
    if any(f.needs_judge for f in filters):
        return "usc composes each kept answer with a model call: another threshold would need new calls"
    if not any(f.threshold_setting for f in filters):
        return f"{'+'.join(f.name for f in filters)} has no threshold to vary"
    return None


def thin(values: Iterable[float], chosen: float, limit: int = MAX_POINTS) -> tuple[list[float], bool]:
    """The sorted candidate thresholds, at most `limit` of them evenly spaced in rank (the lowest
    and highest kept), with `chosen` added; and whether any were left out."""
    ordered = sorted(set(values))
    thinned = len(ordered) > limit
    if thinned:
        ordered = [ordered[round(i * (len(ordered) - 1) / (limit - 1))] for i in range(limit)]
    return sorted(set(ordered) | {chosen}), thinned


def threshold_curves(filters: Sequence, chunks: Callable[[], Iterator[Chunk]],
                     filter_inputs: Callable[[Grouped | None], FilterInputs], judge: Judge,
                     curated: Mapping[str, tuple[bool, tuple]]) -> list[dict]:
    """One curve per thresholded filter of the chain. `chunks()` gives the outputs afresh for each
    pass (two: the candidate thresholds, then every point); `filter_inputs(perturbed)` what the
    filters read besides the outputs; `curated`: curation's own decision per input (kept, kept
    output keys), which the chosen point must reproduce."""
    varied = [i for i, f in enumerate(filters) if f.threshold_setting]
    candidates: dict[int, set[float]] = {i: set() for i in varied}
    for grouped, _ in chunks():
        for outputs in grouped.values():
            visible = masked(outputs)  # a truncated output's answer is never read, as in curation
            for i in varied:
                candidates[i] |= filters[i].threshold_values(visible)
    plans = []
    for i in varied:
        chosen = filters[i].chosen_threshold()
        values, thinned = thin(candidates[i], chosen)
        chains = [[f.at_threshold(v) if j == i else f for j, f in enumerate(filters)] for v in values]
        chosen_at = values.index(chosen)
        chains[chosen_at] = list(filters)  # the recipe's filters as they are (plurality stays plurality)
        plans.append((filters[i], values, thinned, chains, chosen_at))
    tallies = [[Tally() for _ in values] for _, values, _, _, _ in plans]
    differs = [0] * len(plans)
    for grouped, perturbed in chunks():
        inputs = filter_inputs(perturbed)
        for p, (_, values, _, chains, chosen_at) in enumerate(plans):
            for k, chain in enumerate(chains):
                for verdict in compose(chain, inputs)(grouped):
                    tallies[p][k].add(verdict, judge)
                    if k == chosen_at and curated.get(verdict.example_id) != decision(verdict):
                        differs[p] += 1
    curves = []
    for p, (config, values, thinned, _, chosen_at) in enumerate(plans):
        points = [{"threshold": v, **tallies[p][k].figures(), "chosen": k == chosen_at} for k, v in enumerate(values)]
        curves.append({"filter": config.name, "setting": config.threshold_setting, "chosen": values[chosen_at],
                       **({"vote": config.vote} if hasattr(config, "vote") else {}),
                       "points": points, "thinned": thinned, "reproduced": differs[p] == 0, "differs": differs[p]})
    return curves


def decision(verdict: Verdict) -> tuple[bool, tuple]:
    """What a verdict decides, for comparing two runs of a filter: kept, and which outputs."""
    return verdict.kept, tuple(sorted(OutputRef.of(r).key for r in verdict.kept_outputs))
