"""System 1: answer directly, with few-shot question–answer pairs and no reasoning.

The same prompt is the student's input in distillation, so the distilled model is scored on
exactly the prompt the baseline System 1 gets.
"""

from __future__ import annotations

from s2distill.tasks import Task
from s2distill.types import Call, Example, Request, Trace

SHOT = "Q: {question}\nA: {answer}\n\n"
QUERY = "Q: {question}\nA:"
STOP = ("\n",)
# A student trained to reason before answering (full or compressed reasoning) writes several
# lines; it stops where a new exemplar would begin.
MULTILINE_STOP = ("\n\n", "\nQ:")


def direct_prompt(task: Task, example: Example, *, shots: int, task_prefix: str = "", question_suffix: str = "") -> str:
    """The System 1 prompt: `shots` solved exemplars, then the question; `task_prefix` (Distilling
    Step-by-Step's "[label] " or "[rationale] ", Hsieh et al. 2023) goes before all of it, and
    `question_suffix` after every question, the exemplars' too (Yu et al. 2024, Table 6's "Data Input
    Prompt" "{question} Flip means reverse.", which is zero-shot: with exemplars, their questions
    carry the same words so that the prompt's pattern holds)."""
    prefix = "".join(SHOT.format(question=s.question + question_suffix, answer=s.answer) for s in task.shots[:shots])
    return task_prefix + prefix + QUERY.format(question=task.question(example) + question_suffix)


def direct_completion(answer: str) -> str:
    """How an answer follows the System 1 prompt: the target of answer-only distillation."""
    return f" {answer}\n"


def direct(task: Task, *, shots: int = 4, max_tokens: int | None = None, multiline: bool = False,
           task_prefix: str = "", question_suffix: str = ""):
    """Build the System 1 program for `task`.

    `multiline` is for students distilled on reasoning: the answer is read from a closing
    "The answer is X." line when there is one (else from the first line). `task_prefix` starts the
    prompt: a Distilling Step-by-Step student is asked with "[label] " (s2distill/distill.py).
    `question_suffix` follows each question (`options: {question_suffix: " Flip means reverse."}`,
    Yu et al. 2024 Table 6); distillation sets use the student's suffix too (s2distill/distill.py)."""
    stop = MULTILINE_STOP if multiline or task.multiline_answers else STOP
    max_tokens = max_tokens or (256 if task.multiline_answers else 16)

    def program(example: Example, lm) -> Trace:
        prompt = direct_prompt(task, example, shots=shots, task_prefix=task_prefix, question_suffix=question_suffix)
        [completion] = lm.generate([Request(prompt=prompt, max_tokens=max_tokens, stop=stop)])[0]
        answer = task.parse_answer(completion.text)
        return Trace(
            example.id, "direct", answer, [Call(prompt, completion.text, completion.usage, "answer", completion.logprob)],
            error=None if answer is not None else f"unparseable answer: {completion.text[:80]!r}",
        )

    return program
