"""Self-consistency under input perturbation (System 2 distillation, Yu et al. 2024): run System 2
on an input and on a perturbed copy whose answer must not change (the two judged responses
swapped; multiple-choice options shuffled), map the perturbed answer back, and keep the input
only if the two agree. Position-biased verdicts are exactly what this drops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from s2distill.types import Verdict

SWAP_JUDGED_PAIR = {"A": "B", "B": "A", "C": "C"}


def map_back_swapped_verdict(answer: str | None) -> str | None:
    """The verdict on the swapped pair, expressed for the original order ([[A]] ↔ [[B]])."""
    return SWAP_JUDGED_PAIR.get(answer) if answer is not None else None


def perturbation_agreement(
    original: Mapping[str, str | None],
    perturbed: Mapping[str, str | None],
    *,
    map_back: Callable[[str | None], str | None] = map_back_swapped_verdict,
    name: str = "order_swap",
) -> list[Verdict]:
    """One verdict per input of `original`: kept when its answer equals the mapped-back answer on
    the perturbed input; an unparseable or missing answer on either side drops it."""
    verdicts = []
    for example_id, answer in original.items():
        other = map_back(perturbed.get(example_id))
        if answer is None or other is None:
            side = "original" if answer is None else "perturbed"
            verdicts.append(Verdict(example_id, False, f"no parseable answer on the {side} input", None, name))
        elif answer == other:
            verdicts.append(Verdict(example_id, True, f"agreed on {answer!r} after {name}", answer, name))
        else:
            reason = f"{name} disagreed: {answer!r} vs {other!r} (mapped back from {perturbed.get(example_id)!r})"
            verdicts.append(Verdict(example_id, False, reason, None, name))
    return verdicts
