"""Self-consistency curation (Wang et al. 2023; System 2 distillation, Yu et al. 2024): sample a
System 2 program N times per input and keep the input only if one answer wins more than
`min_fraction` of the N samples. No label is read: agreement stands in for correctness.

Unparseable samples count in N but vote for nothing, so a program that mostly fails cannot pass
on a couple of lucky samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from s2distill.curation.outputs import output_refs
from s2distill.types import Trace, Verdict


def self_consistency(
    traces_by_input: dict[str, Sequence[Trace]],
    *,
    min_fraction: float = 0.5,
    normalize: Callable[[str], str] = str,
) -> list[Verdict]:
    """One verdict per input: kept with the majority answer, or dropped with the reason.

    Kept when the top answer's share of all samples is strictly above `min_fraction` (0.5 is the
    strict majority of the papers) and no other answer ties it. The kept outputs (`meta["kept"]`)
    are the samples that gave the top answer; samples of several teachers may be pooled.
    """
    verdicts = []
    for example_id, traces in traces_by_input.items():
        total = len(traces)
        votes = Counter(normalize(t.answer) for t in traces if t.answer is not None)
        if not votes:
            verdicts.append(Verdict(example_id, False, f"no parseable answer in {total} samples", None, "self_consistency"))
            continue
        ranked = votes.most_common()
        answer, count = ranked[0]
        share = f"{count}/{total}"
        meta = {"votes": dict(votes), "samples": total}
        if len(ranked) > 1 and ranked[1][1] == count:
            reason = f"tie: {answer!r} and {ranked[1][0]!r} both {share}"
            verdicts.append(Verdict(example_id, False, reason, None, "self_consistency", meta))
        elif count / total > min_fraction:
            meta["kept"] = output_refs(t for t in traces if t.answer is not None and normalize(t.answer) == answer)
            verdicts.append(Verdict(example_id, True, f"top answer {answer!r} {share}", answer, "self_consistency", meta))
        else:
            reason = f"no majority: top answer {answer!r} {share} <= {min_fraction:g}"
            verdicts.append(Verdict(example_id, False, reason, None, "self_consistency", meta))
    return verdicts
