"""Chain-of-thought with the prompt of Yu et al. 2024's Figure 10 ("Distilling System 2 into
System 1", appendix A.1), verbatim: the question, step-by-step reasoning, and a closing
"Final answer: ..." line. That fixed last line is what lets the answer be read without the chain,
as the paper needs to build answer-only targets (the figure's caption says so).

`shots: 0` (or the `chat` format) sends Figure 10 alone: the paper's setting (a zero-shot chat
model). With `shots: k` in the `fewshot` format, an addition for pretrained models: k of the task's
solved exemplars come first, each Figure 10's prompt followed by the exemplar's worked reasoning
and "Final answer: X" (Wei et al. 2022's few-shot chain of thought, in Figure 10's format). They
show the method's own step, reasoning then the answer, and nothing more.
"""

from __future__ import annotations

import re
from typing import Literal

from s2distill.methods.calls import PromptFormat, ask
from s2distill.methods.registry import System2Method, register
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

# Figure 10.
PROMPT = (
    "Your task is to answer the question below. Give step by step reasoning before you answer, and when you're ready "
    'to answer, please use the format "Final answer: ..."\nQuestion: {question}\nSolution:'
)
SHOT = PROMPT + " {rationale}\nFinal answer: {answer}\n\n"
STOP = ("\n\n", "\nQuestion:")


def strip_final_answer(text: str) -> str:
    """The reasoning without its closing "The answer is X." / "Final answer: X" sentence."""
    return re.sub(r"\s*(?:So,?\s*)?(?:the answer is|final answer:)[^\n]*\s*$", "", text.strip(), flags=re.IGNORECASE).strip()


def cot(task: Task, *, shots: int = 4, max_tokens: int = 128, prompt_format: PromptFormat = "fewshot"):
    """Build the chain-of-thought program for `task`: Figure 10, after `shots` worked exemplars in
    the `fewshot` format."""
    shown = tuple(s for s in task.shots if s.rationale)[:shots] if prompt_format == "fewshot" else ()
    prefix = "".join(SHOT.format(question=s.question, rationale=s.rationale, answer=s.answer) for s in shown)

    def program(example: Example, lm) -> Trace:
        calls: list[Call] = []
        text = prefix + PROMPT.format(question=task.question(example))
        stop = STOP if shown else ("\nQuestion:",)
        reply = ask(lm, text, calls=calls, name="reason", prompt_format=prompt_format, max_tokens=max_tokens, stop=stop).text
        found = any(marker in reply.lower() for marker in ("answer is", "final answer:"))
        answer = task.parse_answer(reply) if found else None
        return Trace(
            example.id, "cot", answer, calls,
            error=None if answer is not None else f"no final answer in: {reply[-80:]!r}",
            rationale=strip_final_answer(reply),
        )

    return program


class CoTConfig(System2Method):
    """Chain-of-thought: Figure 10's prompt, after `shots` worked exemplars in the fewshot format."""

    name: Literal["cot"] = "cot"


register(CoTConfig, cot, "System 2: chain-of-thought (Yu et al. Figure 10), ending in 'Final answer: X'; few-shot or "
         "zero-shot")
