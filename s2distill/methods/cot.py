"""Chain-of-thought, few-shot (Wei et al. 2022): worked rationales ending in "The answer is X."."""

from __future__ import annotations

from s2distill.tasks import Task
from s2distill.types import Call, Example, Request, Trace

SHOT = "Q: {question}\nA: {rationale} The answer is {answer}.\n\n"
QUERY = "Q: {question}\nA:"
STOP = ("\n\n", "\nQ:")


def cot(task: Task, *, shots: int = 4, max_tokens: int = 128):
    """Build the few-shot chain-of-thought program for `task`."""
    prefix = "".join(SHOT.format(question=s.question, rationale=s.rationale, answer=s.answer) for s in task.shots[:shots])

    def program(example: Example, lm) -> Trace:
        prompt = prefix + QUERY.format(question=task.question(example))
        [completion] = lm.generate([Request(prompt=prompt, max_tokens=max_tokens, stop=STOP)])[0]
        text = completion.text
        answer = task.parse_answer(text) if "answer is" in text.lower() else None
        return Trace(
            example.id, "cot", answer, [Call(prompt, text, completion.usage, "reason")],
            error=None if answer is not None else f"no final answer in: {text[-80:]!r}",
        )

    return program
