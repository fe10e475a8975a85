"""How a verdict names the outputs it keeps: which teacher, which sample, what answer.

Every System 2 trace carries its teacher's name in `teacher` (the sampling stage sets it), so a
filter can pool several teachers' outputs for one input and still say whose outputs it kept; the
report counts them per teacher and the distillation sets read the kept traces back.
"""

from __future__ import annotations

from collections.abc import Iterable

from s2distill.types import OutputRef, Trace


def teacher_of(trace: Trace) -> str:
    return trace.teacher


def output_refs(traces: Iterable[Trace]) -> tuple[OutputRef, ...]:
    """A verdict's `kept_outputs` for these traces."""
    return tuple(OutputRef(teacher_of(t), t.sample, t.answer) for t in traces)


def output_key(trace_or_ref) -> tuple[str, str, int]:
    """(input id, teacher, sample): one output of one teacher on one input (of a trace, or of a
    mapping with those keys, e.g. a rewrite row with its input's id)."""
    if isinstance(trace_or_ref, Trace):
        return trace_or_ref.example_id, teacher_of(trace_or_ref), trace_or_ref.sample
    return trace_or_ref["example_id"], trace_or_ref["teacher"], trace_or_ref["sample"]
