"""Self-consistency curation (Wang et al. 2023; System 2 distillation, Yu et al. 2024): sample a
System 2 program N times per input and keep the input only if its answers agree enough. No label
is read: agreement stands in for correctness.

Two votes (`curation.vote`):

- `majority` (default): the top answer's share of all N samples must be above `min_fraction`
  (0.5: a strict majority).
- `plurality`: the most frequent answer wins whatever its share (Wang et al. 2023's
  self-consistency, the maj@k vote); `min_fraction` is not used.

What the paper implies: Yu et al. 2024 (Section 3) "accept the response that is the majority vote;
if there is no majority winner, we discard the example", and for RaR (Section 4.2) "apply a
majority vote to determine the final output". "Majority vote" is commonly the plurality vote of
self-consistency, while "no majority winner" reads most naturally as no answer above half;
`majority` is that stricter reading, `plurality` the other, and both drop ties.

Ties: when two answers share the top count the input is dropped under either vote (no answer can
be said to be the model's), and the reason names both. Unparseable samples count in N but vote
for nothing, so a program that mostly fails cannot pass a majority on a couple of lucky samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from s2distill.curation.outputs import output_refs
from s2distill.types import Trace, Verdict
from s2distill.scoring.voting import vote as count_votes

Vote = Literal["majority", "plurality"]


def self_consistency(
    traces_by_input: dict[str, Sequence[Trace]],
    *,
    min_fraction: float = 0.5,
    normalize: Callable[[str], str] = str,
    vote: Vote = "majority",
) -> list[Verdict]:
    """One verdict per input: kept with the winning answer, or dropped with the reason.

    The kept outputs (`kept_outputs`) are the samples that gave the winning answer; samples of
    several teachers may be pooled. `meta` holds the votes.
    """
    if vote not in ("majority", "plurality"):
        raise ValueError(f"vote is majority or plurality, got {vote!r}")
    verdicts = []
    for example_id, traces in traces_by_input.items():
        result = count_votes((t.answer for t in traces), ties="drop", normalize=normalize)
        total, count = result.total, result.count
        if not result.votes:
            verdicts.append(Verdict(example_id, False, f"no parseable answer in {total} samples", None, "self_consistency"))
            continue
        answer = result.answer
        share = f"{count}/{total}"
        meta = {"votes": result.votes, "samples": total, "vote": vote}
        if result.tied_with is not None:
            leader = next(a for a, n in result.votes.items() if n == count)
            reason = f"tie: {leader!r} and {result.tied_with!r} both {share}"
            verdicts.append(Verdict(example_id, False, reason, None, "self_consistency", meta))
        elif vote == "plurality" or count / total > min_fraction:
            kept = output_refs(t for t in traces if t.answer is not None and normalize(t.answer) == answer)
            won = "plurality" if vote == "plurality" else "top answer"
            verdicts.append(Verdict(example_id, True, f"{won} {answer!r} {share}", answer, "self_consistency", meta,
                                    kept_outputs=kept))
        else:
            reason = f"no majority: top answer {answer!r} {share} <= {min_fraction:g}"
            verdicts.append(Verdict(example_id, False, reason, None, "self_consistency", meta))
    return verdicts
