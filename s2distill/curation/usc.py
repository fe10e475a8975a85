"""Universal self-consistency as a filter (Chen et al. 2023): the LLM reads an input's N outputs
and names the most consistent one. Nothing has to match exactly, so it suits free-form answers
(the System 2 distillation paper uses it for S2A on TriviaQA).

Kept: the input, when the model names an output whose answer parses; the kept outputs are those
with that output's answer. Dropped: when no output parses, or the model names none (recorded).
An input with a single parseable output keeps it without asking.

The selection is a program run like any other (`selection_program`), so its calls are batched,
cached and counted like the teachers'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from s2distill.curation.outputs import output_refs
from s2distill.methods.calls import PromptFormat
from s2distill.methods.usc import usc_select
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace, Verdict


def response_text(trace: Trace) -> str:
    """What the judge reads of an output: its final call's text (a program, a reasoning, a verdict)."""
    return trace.calls[-1].output if trace.calls else ""


def selection_program(task: Task, traces_by_input: Mapping[str, Sequence[Trace]], *, prompt_format: PromptFormat = "fewshot"):
    """A program whose `answer` is the index (as text) of the output the model picks, or None."""

    def program(example: Example, lm) -> Trace:
        traces = [t for t in traces_by_input[example.id] if t.answer is not None]
        calls: list[Call] = []
        if len(traces) < 2:
            chosen = 0 if traces else None
        else:
            chosen = usc_select(task, task.question(example), [response_text(t) for t in traces], lm, calls=calls,
                                prompt_format=prompt_format)
        return Trace(example.id, "usc_select", None if chosen is None else str(chosen), calls,
                     error=None if chosen is not None else "the judge named no response")

    return program


def usc_filter(
    traces_by_input: Mapping[str, Sequence[Trace]],
    chosen: Mapping[str, str | None],
    *,
    normalize: Callable[[str], str] = str,
) -> list[Verdict]:
    """Verdicts from the judge's choices (`chosen[id]`: index among the parseable outputs)."""
    verdicts = []
    for example_id, traces in traces_by_input.items():
        parsed = [t for t in traces if t.answer is not None]
        if not parsed:
            verdicts.append(Verdict(example_id, False, f"no parseable answer in {len(traces)} outputs", None, "usc"))
            continue
        index = chosen.get(example_id)
        if index is None:
            verdicts.append(Verdict(example_id, False, "the judge named no response", None, "usc"))
            continue
        answer = normalize(parsed[int(index)].answer)
        agreeing = [t for t in parsed if normalize(t.answer) == answer]
        reason = f"judge chose response {index} of {len(parsed)}: {answer!r} ({len(agreeing)} agree)"
        verdicts.append(Verdict(example_id, True, reason, answer, "usc", {"kept": output_refs(agreeing)}))
    return verdicts
