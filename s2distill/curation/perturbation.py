"""Self-consistency under input perturbation (System 2 distillation, Yu et al. 2024): run System 2
on an input and on a perturbed copy whose answer must not change (the two judged responses
swapped; multiple-choice options shuffled), map the perturbed answer back, and keep the input
only if the two agree. Position-biased verdicts are exactly what this drops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from s2distill.curation.self_consistency import self_consistency
from s2distill.types import Trace, Verdict


def perturbation_agreement(
    original: Mapping[str, str | None],
    perturbed: Mapping[str, str | None],
    *,
    map_back: Callable[[str | None], str | None],
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


def perturbation_consistency(
    original: dict[str, Sequence[Trace]],
    perturbed: dict[str, Sequence[Trace]],
    *,
    map_back: Callable[[str, str | None], str | None],
    normalize: Callable[[str], str] = str,
    min_fraction: float = 0.5,
    vote: str = "majority",
    name: str = "perturbation",
) -> list[Verdict]:
    """Sampled System 2 on both sides: each side's answer is its self-consistent majority (with one
    sample per side, that sample's answer; `vote` as in `self_consistency`), and the input is kept
    when the two agree after mapping back (`map_back(input id, answer)`: a shuffle differs per input). The kept outputs are the
    original side's samples that gave the agreed answer."""
    sides = [
        {v.example_id: v for v in self_consistency(side, min_fraction=min_fraction, normalize=normalize, vote=vote)}
        for side in (original, perturbed)
    ]
    verdicts = []
    for example_id in original:
        first, second = sides[0][example_id], sides[1].get(example_id)
        if not first.kept or second is None or not second.kept:
            side, verdict = ("original", first) if not first.kept else ("perturbed", second)
            reason = verdict.reason if verdict is not None else "not run"
            verdicts.append(Verdict(example_id, False, f"{side} input: {reason}", None, name))
            continue
        [agreement] = perturbation_agreement(
            {example_id: first.answer}, {example_id: second.answer},
            map_back=lambda a: normalize(back) if (back := map_back(example_id, a)) is not None else None, name=name,
        )
        meta = {"original_votes": first.meta["votes"], "perturbed_votes": second.meta["votes"]}
        verdicts.append(Verdict(example_id, agreement.kept, agreement.reason, agreement.answer, name, meta,
                                kept_outputs=first.kept_outputs if agreement.kept else ()))
    return verdicts
