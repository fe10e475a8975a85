"""What the `soft_labels` teacher reads: the student's own prompt with the System 2 trace after the
question (context distillation).

The teacher is a model (by default the student's own base model, untrained: TRL SDFT's
`teacher_model_kind: base`) that reads the kept trace as privileged context: every call's output in
order (RaR's rephrased question and its answer, S2A's regenerated context and answer, PAL's program,
CoT's chain, BSM's branches and merge), then a program's printed output. The student reads the bare
question; it learns the teacher's next-token distribution over its target's tokens
(training/soft_labels.py). The context sits after the asked question, before the answer cue, as
TRL SDFT's `teacher_prompt_template` "{prompt}\\n\\n{privileged_context}" puts it after the prompt
(methods/direct.py, `with_context`).

The teacher never reads a label: it is built from the `Example` (which has no label field) and the
trace the System 2 program wrote, nothing else.
"""

from __future__ import annotations

from s2distill.distill.pairs import LABEL_PREFIX, RATIONALE_PREFIX, fold_blank_lines, student_prompt
from s2distill.tasks import Task
from s2distill.types import Example, Trace

# A step_by_step pair's task prefix, by the task its pair names
TASK_PREFIXES = {"label": LABEL_PREFIX, "rationale": RATIONALE_PREFIX}


def privileged_context(trace: Trace) -> str:
    """The trace as the teacher reads it: each call's output, then a program's printed output
    ("Output: ..."), blank lines folded (a few-shot prompt separates its exemplars by them)."""
    parts = [call.output.strip() for call in trace.calls if call.output.strip()]
    printed = str(trace.meta.get("stdout") or "").strip()
    if printed:
        parts.append(f"Output: {printed}")
    return fold_blank_lines("\n".join(parts))


def teacher_prompt(task: Task, example: Example, trace: Trace, pair: dict, *, shots: int, question_suffix: str,
                   prompt_format: str) -> str | list[dict]:
    """The teacher's prompt for `pair`: the student's prompt for it, the trace after the question.
    Raises ValueError when the student's prompt rebuilt without the trace is not the pair's own
    (the teacher would score the target after another prompt than the student learns it from)."""
    settings = {"shots": shots, "task_prefix": TASK_PREFIXES.get(pair.get("task", ""), ""),
                "question_suffix": question_suffix, "prompt_format": prompt_format}
    if student_prompt(task, example, **settings) != pair["prompt"]:
        raise ValueError(f"input {example.id}: the training pair's prompt is not the student's prompt as the soft "
                         "labels' teacher rebuilds it")
    return student_prompt(task, example, **settings, context=privileged_context(trace))
