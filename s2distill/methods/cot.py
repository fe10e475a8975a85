"""Chain-of-thought (Wei et al. 2022; Kojima et al. 2022).

Few-shot: `shots` worked rationales ending in "The answer is X." before the question.
Zero-shot (`shots: 0`): the question, an instruction to reason step by step, and to end with a
line "Final answer: X". That fixed last line is what lets the answer be read without the chain,
as the distillation paper needs to build answer-only targets.
"""

from __future__ import annotations

import re

from s2distill.methods.calls import PromptFormat, ask
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

SHOT = "Q: {question}\nA: {rationale} The answer is {answer}.\n\n"
QUERY = "Q: {question}\nA:"
STOP = ("\n\n", "\nQ:")
ZERO_SHOT = (
    "{question}\nLet's think step by step. Then give your final answer on a last line of its own, "
    'in the form "Final answer: <answer>".'
)


def strip_final_answer(text: str) -> str:
    """The reasoning without its closing "The answer is X." / "Final answer: X" sentence."""
    return re.sub(r"\s*(?:So,?\s*)?(?:the answer is|final answer:)[^\n]*\s*$", "", text.strip(), flags=re.IGNORECASE).strip()


def cot(task: Task, *, shots: int = 4, max_tokens: int = 128, prompt_format: PromptFormat = "fewshot"):
    """Build the chain-of-thought program for `task`: few-shot, or zero-shot when `shots` is 0."""
    prefix = "".join(SHOT.format(question=s.question, rationale=s.rationale, answer=s.answer) for s in task.shots[:shots])

    def program(example: Example, lm) -> Trace:
        calls: list[Call] = []
        if shots and prompt_format == "fewshot":
            text = prefix + QUERY.format(question=task.question(example))
            reply = ask(lm, text, calls=calls, name="reason", prompt_format=prompt_format, max_tokens=max_tokens, stop=STOP).text
        else:
            text = ZERO_SHOT.format(question=task.question(example)) + ("\n" if prompt_format == "fewshot" else "")
            reply = ask(lm, text, calls=calls, name="reason", prompt_format=prompt_format, max_tokens=max_tokens,
                        stop=("\nQ:",)).text
        found = any(marker in reply.lower() for marker in ("answer is", "final answer:"))
        answer = task.parse_answer(reply) if found else None
        return Trace(
            example.id, "cot", answer, calls,
            error=None if answer is not None else f"no final answer in: {reply[-80:]!r}",
            meta={"rationale": strip_final_answer(reply)},
        )

    return program
