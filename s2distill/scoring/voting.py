"""The one vote over sampled answers, shared by curation (self-consistency, perturbation) and
evaluation (maj@k), with its tie rule explicit at each call:

- `ties="drop"` (curation): when two answers share the top count there is no winner, since no
  answer can be said to be the model's; the input is dropped and the reason names both.
- `ties="first"` (maj@k): an answer must be given, so the tied answer sampled first wins (the
  earliest sample index), which makes maj@k deterministic for a given set of samples.

Unparseable samples (None) count in the total but vote for nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

Ties = Literal["drop", "first"]


@dataclass(frozen=True)
class Vote:
    answer: str | None  # the winner (normalised); None when nothing parsed or a dropped tie
    count: int  # votes of the top answer
    total: int  # samples, unparseable ones included
    votes: dict[str, int]  # every answer's votes, in order of first appearance
    tied_with: str | None = None  # the other top answer when a tie was dropped


def vote(answers: Iterable[str | None], *, ties: Ties, normalize: Callable[[str], str] = str) -> Vote:
    """The most frequent answer of `answers` (in sample order), under the tie rule `ties`."""
    answers = list(answers)
    votes = Counter(normalize(a) for a in answers if a is not None)  # insertion order: first appearance
    if not votes:
        return Vote(None, 0, len(answers), {})
    top = max(votes.values())
    leaders = [a for a, n in votes.items() if n == top]  # first-sampled first
    if len(leaders) > 1 and ties == "drop":
        return Vote(None, top, len(answers), dict(votes), tied_with=leaders[1])
    return Vote(leaders[0], top, len(answers), dict(votes))
