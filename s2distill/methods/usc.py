"""Universal self-consistency (Chen et al. 2023, arXiv 2311.17311): sample N responses, then ask
the model which one is the most consistent with the others, and answer with that one.

Used as a System 2 method of its own (here) and by curation. The selection prompt is the USC
paper's. The N responses come from another method (`base`, chain-of-thought by default), each run
as its own sample; the selection call is greedy.
"""

from __future__ import annotations

import re

from s2distill.lm.base import SampledLM
from s2distill.methods import exemplars
from s2distill.methods.calls import PromptFormat, ask
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

SELECT = (
    "I have generated the following responses to the question: {question}\n\n{responses}\n\n"
    "Evaluate these responses.\nSelect the most consistent response based on majority consensus.\n"
    'Start your answer with "The most consistent response is Response X" (without quotes).'
)
_CHOICE = re.compile(r"most consistent response is Response\s*(\d+)", re.IGNORECASE)


def parse_choice(text: str, n: int) -> int | None:
    """The index the model chose, or None if it named none (or one out of range)."""
    match = _CHOICE.search(text) or re.search(r"^\s*Response\s*(\d+)", text, re.IGNORECASE)
    if not match:
        return None
    index = int(match.group(1))
    return index if 0 <= index < n else None


def _listed(responses) -> str:
    return "\n\n".join(f"Response {i}: {text.strip()}" for i, text in enumerate(responses))


def usc_select(task: Task, question: str, responses: list[str], lm, *, calls: list[Call], prompt_format: PromptFormat,
               max_tokens: int = 24, shots: int = 1) -> int | None:
    """Ask the model (greedily) which of `responses` is the most consistent; record the call.

    In the `fewshot` format a worked selection (`exemplars.USC`) comes first and the reply is
    primed with "The most consistent response is Response".
    """
    text = SELECT.format(question=question, responses=_listed(responses))
    if prompt_format == "fewshot":
        shown = exemplars.USC[:shots]
        prefix = "".join(
            SELECT.format(question=e["question"], responses=_listed(e["responses"]))
            + f"\nThe most consistent response is Response {e['choice']}\n\n"
            for e in shown
        )
        text = prefix + text + "\nThe most consistent response is Response"
    reply = ask(lm, text, calls=calls, name="select", prompt_format=prompt_format, max_tokens=max_tokens, stop=("\n",), temperature=0.0)
    chosen = reply.text if prompt_format == "chat" else f"The most consistent response is Response{reply.text}"
    return parse_choice(chosen, len(responses))


def usc(task: Task, *, base: str = "cot", samples: int = 4, temperature: float = 0.7, shots: int = 4,
        prompt_format: PromptFormat = "fewshot", max_tokens: int | None = None):
    """Build the USC program over `samples` runs of the `base` method."""
    from s2distill.methods import METHODS, factory_options

    base_program = METHODS[base][0](task, **factory_options(base, shots=shots, max_tokens=max_tokens, prompt_format=prompt_format))

    def program(example: Example, lm) -> Trace:
        # Sample k of USC draws its N base samples as sample indices k*N .. k*N+N-1 of the model.
        k = getattr(lm, "sample", 0)
        candidates = [
            base_program(example, SampledLM(lm, temperature=temperature, sample=k * samples + j, seed=getattr(lm, "seed", 0)))
            for j in range(samples)
        ]
        calls = [call for trace in candidates for call in trace.calls]
        chosen = usc_select(task, task.question(example), [t.calls[-1].output for t in candidates], lm, calls=calls,
                            prompt_format=prompt_format, shots=1 if shots else 0)
        answer = candidates[chosen].answer if chosen is not None else None
        error = "no response chosen" if chosen is None else candidates[chosen].error
        return Trace(example.id, "usc", answer, calls, error=error, meta={"chosen": chosen, "candidates": [t.answer for t in candidates]})

    return program
