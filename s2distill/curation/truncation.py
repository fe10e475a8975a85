"""Truncated outputs in curation: an output whose call was cut at its `max_tokens` budget
(`Trace.truncated`) is kept out of every filter as "truncated", a reason of its own.

DESIGN: "A completion cut at its budget is 'truncated', counted, and never kept as a target." A cut
output may still parse (a chain of thought stopped after "The answer is 4" of "42"), so before any
filter reads an input's outputs a truncated one has its answer removed: every filter then treats it
as an output without an answer (it counts in N and votes for nothing), and none can keep it. After
the filters, each verdict's reason says how many of the input's outputs were cut, and an input whose
outputs were all cut says so instead of "no parseable answer" ("all 4 samples truncated at
max_tokens"); `meta["truncated"]` holds the count. The curation summary counts them per teacher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from s2distill.types import Trace, Verdict

TRUNCATED = "truncated at max_tokens"


def masked(traces: Sequence[Trace]) -> list[Trace]:
    """The outputs as a filter sees them: a truncated one without its answer (and saying why)."""
    return [replace(t, answer=None, error=f"{TRUNCATED}: a call was cut at its budget") if t.truncated else t
            for t in traces]


def without_truncated(grouped: Mapping[str, Sequence[Trace]]) -> dict[str, list[Trace]]:
    """`masked` for every input's outputs."""
    return {example_id: masked(traces) for example_id, traces in grouped.items()}


def noted(verdict: Verdict, traces: Sequence[Trace]) -> Verdict:
    """The verdict with its input's truncated outputs (`traces`: as sampled, unmasked) counted in its
    reason; a dropped input whose outputs were all cut has that as its whole reason."""
    cut = sum(t.truncated for t in traces)
    if not cut:
        return verdict
    if cut == len(traces) and not verdict.kept:
        reason = f"all {cut} samples {TRUNCATED}"
    else:
        reason = f"{verdict.reason} ({cut} of {len(traces)} samples {TRUNCATED})"
    return replace(verdict, reason=reason, meta={**verdict.meta, "truncated": cut})
