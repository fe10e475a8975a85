"""Universal self-consistency as curation, the way Yu et al. 2024 use it for S2A (Section 4.3,
Figure 12): the judge model reads an input's N outputs and composes a final answer consistent with
the majority; that composed answer is the input's distillation target (`Verdict.composed`, which
the answer-only set trains on). Nothing has to match exactly, so it suits free-form answers.

Kept: the input, when the composition gives a "FINAL:" answer that parses. The kept outputs
(`Verdict.kept_outputs`, for reasoning sets and the report) are those whose answer equals it, possibly none
for free-form answers. Dropped: when no output parses, or the judge composes nothing, or its
composition was cut at its budget (a cut composition is never a target; recorded).
An input with one parseable output takes it as the composed answer without a call; N outputs that
do not fit the context fall back to half of them, then to one at random (`methods.usc`).

The composition is a program run like any other (`methods.usc.composition_program`), so its
calls are batched, cached and counted like the teachers'; this filter reads its traces as data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from s2distill.curation.outputs import output_refs
from s2distill.types import Trace, Verdict

# A dropped input's reason when the judge's composition was cut at its budget (`curation.usc_max_tokens`)
COMPOSITION_TRUNCATED = "the judge's composition was truncated at max_tokens"


def usc_filter(
    traces_by_input: Mapping[str, Sequence[Trace]],
    composed: Mapping[str, Trace],
    *,
    normalize: Callable[[str], str] = str,
) -> list[Verdict]:
    """Verdicts from the compositions (`composed[id]`: the trace of `methods.usc.composition_program`)."""
    verdicts = []
    for example_id, traces in traces_by_input.items():
        parsed = [t for t in traces if t.answer is not None]
        if not parsed:
            verdicts.append(Verdict(example_id, False, f"no parseable answer in {len(traces)} outputs", None, "usc"))
            continue
        trace = composed.get(example_id)
        if trace is None or trace.answer is None:
            verdicts.append(Verdict(example_id, False, "the judge composed no FINAL answer", None, "usc"))
            continue
        if trace.truncated:
            verdicts.append(Verdict(example_id, False, COMPOSITION_TRUNCATED, None, "usc",
                                    meta={"composition_truncated": True}))  # counted by this flag: reasons get prefixed
            continue
        answer = normalize(trace.answer)
        agreeing = [t for t in parsed if normalize(t.answer) == answer]
        reason = f"composed from {trace.meta.get('used', len(parsed))} of {len(parsed)} outputs: {answer!r} ({len(agreeing)} agree)"
        verdicts.append(Verdict(example_id, True, reason, answer, "usc", {"fallback": trace.meta.get("fallback")},
                                kept_outputs=output_refs(agreeing), composed=trace.final_response or ""))
    return verdicts
