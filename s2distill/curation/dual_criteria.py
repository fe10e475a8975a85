"""TwT's Dual-Criteria Rejection Sampling (Xu et al. 2025) over several teachers' outputs per input.

1. Quality: keep outputs whose self-reported confidence (the teacher's `score:`) is at least the
   threshold `s` (0.95 in the paper). An output without a parseable confidence or answer fails.
2. Diversity: when three or more outputs pass, keep the pair whose rationales have the lowest
   cosine similarity of their sentence embeddings; with one or two, keep them.

`embed` maps texts to vectors (e.g. a sentence-transformers model's `encode`); it is only called
when a diversity choice is needed. Each input gets one verdict, with the kept outputs (teacher and
sample) in `kept_outputs` and the reason in `reason`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np

from s2distill.curation.outputs import output_refs, teacher_of
from s2distill.types import Trace, Verdict

Embed = Callable[[list[str]], "np.ndarray"]


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return unit @ unit.T


def most_diverse_pair(vectors: np.ndarray) -> tuple[int, int, float]:
    """Indices of the two rows with the lowest cosine similarity (first such pair on ties)."""
    sims = cosine_matrix(vectors)
    i, j = min(combinations(range(len(vectors)), 2), key=lambda p: sims[p[0], p[1]])
    return i, j, float(sims[i, j])


def dual_criteria(
    outputs_by_input: dict[str, Sequence[Trace]],
    *,
    embed: Embed,
    threshold: float = 0.95,
    score: Callable[[Trace], float | None] = lambda t: t.confidence,
    criterion: str = "confidence",
    name: str = "dual_criteria",
) -> list[Verdict]:
    """`outputs_by_input[id]` lists every teacher's traces for the input, with their `teacher`,
    `confidence` and `rationale` (as the `twt` method and the sampling stage record them).

    Quality selection keeps the outputs whose `score` is at least `threshold`: the self-reported
    confidence (DCRS), or TwT Table 5's alternative, the mean token log-probability
    (`Trace.mean_logprob`); `score=None` keeps every parseable output (diversity selection alone,
    after another filter's hard rejection)."""
    verdicts = []
    for example_id, outputs in outputs_by_input.items():
        passing = [t for t in outputs if t.answer is not None and (score is None or (
            (value := score(t)) is not None and value >= threshold))]
        if not passing:
            reason = (f"no output with {criterion} >= {threshold:g} ({len(outputs)} outputs)" if score is not None
                      else f"no parseable answer in {len(outputs)} outputs")
            verdicts.append(Verdict(example_id, False, reason, None, name))
            continue
        reason = (f"{len(passing)} of {len(outputs)} outputs with {criterion} >= {threshold:g}" if score is not None
                  else f"{len(passing)} of {len(outputs)} outputs")
        kept = passing
        if len(passing) >= 3:
            i, j, similarity = most_diverse_pair(np.asarray(embed([t.rationale or "" for t in passing])))
            kept = [passing[i], passing[j]]
            names = " and ".join(f"{teacher_of(t)}#{t.sample}" for t in kept)
            reason += f"; most diverse pair {names}, cosine {similarity:.2f}"
        verdicts.append(Verdict(example_id, True, reason, kept[0].answer, name, kept_outputs=output_refs(kept)))
    return verdicts
