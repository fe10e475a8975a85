"""The distilled cascade's arithmetic: the student answers where it is sure, System 2 where it is not.

A student answer's *confidence* is recorded while it answers (`confidence_of`): the probability
the student gives its whole greedy answer (its tokens' log-probabilities summed, exponentiated),
or, for an answer that is the majority of k samples, the share of the k that agree with it. At a
threshold t the cascade keeps the student's answer when it parsed and its confidence is at least
t, and asks System 2 otherwise; its tokens are the student's for every input plus System 2's for
each one routed (the student has already answered when the cascade decides).

Every function here reads evaluation records (`scoring.score.score_traces`: `id`, `answer`,
`correct`, `completion_tokens`, and the student's `confidence`) and nothing else, so the curve
on the test split is computed from the evaluations the report already holds, and the threshold is
chosen on a split that is not the test split (stages/cascade.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

ROUTE_ALL = math.inf  # the threshold no student answer reaches: System 2 answers everything


@dataclass(frozen=True)
class CascadePoint:
    """The cascade at one threshold: its score, tokens per example and share of inputs routed to System 2."""

    threshold: float
    score: float
    tokens_per_example: float
    routed: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["threshold"] = None if self.threshold == ROUTE_ALL else self.threshold  # JSON has no infinity
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CascadePoint:
        threshold = ROUTE_ALL if data["threshold"] is None else data["threshold"]
        return cls(threshold, data["score"], data["tokens_per_example"], data["routed"])


def threshold_text(threshold: float | None) -> str:
    """A threshold as the report, the run's console and `predict` show it (None, as JSON stores
    `ROUTE_ALL`, or ROUTE_ALL itself: System 2 answers everything)."""
    return "∞ (all to System 2)" if threshold is None or threshold == ROUTE_ALL else f"{threshold:.3g}"


def confidence_of(trace) -> float | None:
    """A trace's confidence: the agreement share of a maj@k answer, else the probability of the
    student's whole output (its calls' log-probabilities summed); None without log-probabilities."""
    votes, k = trace.meta.get("votes"), trace.meta.get("k")
    if isinstance(votes, dict) and k:  # maj@k (scoring.score.majority_traces): every answer's votes
        return (max(votes.values()) if votes and trace.answer is not None else 0) / k
    if not trace.calls or any(call.logprob is None for call in trace.calls):
        return None
    return math.exp(sum(call.logprob for call in trace.calls))


def routes(record: Mapping[str, Any], threshold: float) -> bool:
    """Whether the cascade asks System 2 for this input: no parseable student answer, or one less sure than `threshold`."""
    confidence = record.get("confidence")
    return record.get("answer") is None or confidence is None or confidence < threshold


def cascade_point(student: Sequence[Mapping[str, Any]], system2: Sequence[Mapping[str, Any]],
                  threshold: float) -> CascadePoint:
    """The cascade at `threshold` over the inputs both evaluations scored (matched by id)."""
    second = {r["id"]: r for r in system2}
    pairs = [(r, second[r["id"]]) for r in student if r["id"] in second]
    if not pairs:
        raise ValueError("the student's and System 2's evaluations share no input")
    score = tokens = routed = 0.0
    for own, fallback in pairs:
        tokens += own["completion_tokens"]
        if routes(own, threshold):
            routed += 1
            score += float(fallback["correct"])
            tokens += fallback["completion_tokens"]
        else:
            score += float(own["correct"])
    n = len(pairs)
    return CascadePoint(threshold, score / n, tokens / n, routed / n)


def cascade_curve(student: Sequence[Mapping[str, Any]], system2: Sequence[Mapping[str, Any]]) -> list[CascadePoint]:
    """The cascade at every threshold that changes what it routes, from routing only the answers
    that did not parse (the least confident parsed answer's confidence) to routing everything
    (`ROUTE_ALL`), in increasing tokens."""
    thresholds = sorted({r["confidence"] for r in student if r.get("answer") is not None
                         and r.get("confidence") is not None})
    return [cascade_point(student, system2, t) for t in [*thresholds, ROUTE_ALL]]


def choose_threshold(curve: Sequence[CascadePoint], system2_score: float, *, keep: float | None = None,
                     token_budget: float | None = None) -> CascadePoint:
    """The point a recipe's rule picks on a curve (exactly one of the two rules):

    - `keep`: the fewest tokens that reach `keep` × System 2's score (ties: the higher score);
      where no threshold does, the best score, then the fewest tokens;
    - `token_budget`: the best score within that many tokens per example (ties: the fewer tokens);
      where none fits, the fewest tokens.
    """
    if (keep is None) == (token_budget is None):
        raise ValueError("give exactly one rule: keep or token_budget")
    if not curve:
        raise ValueError("an empty cascade curve")
    if keep is not None:
        reaching = [p for p in curve if p.score >= keep * system2_score - 1e-12]
        if reaching:
            return min(reaching, key=lambda p: (p.tokens_per_example, -p.score))
        return max(curve, key=lambda p: (p.score, -p.tokens_per_example))
    within = [p for p in curve if p.tokens_per_example <= token_budget + 1e-12]
    if within:
        return max(within, key=lambda p: (p.score, -p.tokens_per_example))
    return min(curve, key=lambda p: p.tokens_per_example)


def auroc(records: Sequence[Mapping[str, Any]]) -> float | None:
    """How well confidence separates right answers from wrong (the probability that a random right
    answer is more confident than a random wrong one, ties counted half); None without both kinds.
    An unparseable answer counts as wrong, at its confidence (0 when it has none)."""
    right = [r.get("confidence") or 0.0 for r in records if r.get("answer") is not None and float(r["correct"]) >= 1.0]
    wrong = [r.get("confidence") or 0.0 for r in records if r.get("answer") is None or float(r["correct"]) < 1.0]
    if not right or not wrong:
        return None
    ordered = sorted([(c, 1) for c in right] + [(c, 0) for c in wrong])
    rank_sum, i = 0.0, 0
    while i < len(ordered):  # average ranks over ties
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        average = (i + 1 + j) / 2
        rank_sum += average * sum(label for _, label in ordered[i:j])
        i = j
    return (rank_sum - len(right) * (len(right) + 1) / 2) / (len(right) * len(wrong))
