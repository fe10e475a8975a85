"""Rephrase and Respond (Deng et al. 2023, arXiv 2311.04205) as Yu et al. 2024 distil it
("Distilling System 2 into System 1", appendix A.1).

1-step (Figure 3): one prompt asks the model to reword and elaborate on the question, then answer.
2-step (Figures 4 and 5): the first call rephrases the question with the task's step-1 prompt; the
second call shows the rephrased question *only* (the original is not repeated), followed for coin
flip by "Answer the Yes or No question." (Figure 5, bottom).

The figure texts are verbatim. Figure 3 is below; the 2-step prompts are the task's
(`Task.rar_templates`, s2distill/tasks/base.py), so this module names no task:

- last letters (tasks/last_letters.py): Figure 4. Its step 1 says "these 2 words" (the RaR test
  set has two words per input); for an input of another length the number is that input's word
  count (a departure only where the paper has no such input).
- coin flip (tasks/coin_flip.py): Figure 5.
- other tasks (the paper runs RaR on these two only): Figure 5's step 1 (`tasks.base.RAR_REPHRASE`),
  which is not specific to coin flip, and step 2 is the rephrased question.

Additions, none of which changes the method:

- An answer-format line, `End your response with "The answer is <answer>."`, after the figure's
  text on the call that answers, for every task whose templates ask for it (`answer_line`: all
  but coin flip, whose "Answer the Yes or No question." already makes the reply's answer readable). Yu et al. score against a label;
  distillation curates without one, so the answer must be readable from the reply alone.
- In the `fewshot` format (pretrained models), the task's solved exemplars in the same shape
  before each call. They show the method's own steps and nothing more: a step-1 exemplar is the
  question and its rephrasing (`Shot.rephrased`: no hint the paper does not give, e.g. not
  Table 6's "Flip means reverse."); a step-2 exemplar is the rephrased question and "The answer is
  X." (no worked reasoning: the paper's step 2 shows the rephrased question only, and a worked
  chain of thought would make it chain-of-thought prompting). The tasks' exemplars are balanced
  across answers (coin flip: two "yes", two "no").

Per-stage sampling (`responses_per_rephrasing: m`): Yu et al. sample "eight for each stage" on
coin flip, eight rephrasings and eight responses each. With `samples: N*m`, sample k of the
program rephrases as sample k // m and responds as sample k, so N rephrasings each get m
responses and self-consistency votes over all N*m answers. Each trace records its rephrase call
(the shared ones too, replayed from the cache), so curation-time tokens count it once per sample.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from s2distill.methods.calls import PromptFormat, ask
from s2distill.methods.registry import MAX_SAMPLES, System2Method, register
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

# Figure 3: 1-step RaR.
ONE_STEP = "{question}\n\nReword and elaborate on the inquiry, then provide an answer."
# Figures 4 and 5 (2-step RaR) are the tasks' `rar_templates`.

# Added (see the module docstring): how the answer is made readable without a label.
ANSWER_FORMAT = 'End your response with "The answer is <answer>."'
STOP = ("\n\n",)


def step_prompts(task: Task) -> tuple[str, str]:
    """The (rephrase, respond) templates of 2-step RaR for `task`: Figure 4, Figure 5, or Figure 5's
    step 1 and the bare rephrased question for tasks the paper did not run RaR on."""
    return task.rar_templates.rephrase, task.rar_templates.respond


def rar(task: Task, *, steps: int = 2, shots: int = 4, max_tokens: int = 128, prompt_format: PromptFormat = "fewshot",
        responses_per_rephrasing: int = 1):
    """Build the 1-step or 2-step Rephrase-and-Respond program for `task`."""
    if steps not in (1, 2):
        raise ValueError(f"rar steps must be 1 or 2, got {steps}")
    if responses_per_rephrasing < 1:
        raise ValueError(f"rar responses_per_rephrasing must be >= 1, got {responses_per_rephrasing}")
    rephrase_t, respond_t = step_prompts(task)
    answer_line = task.rar_templates.answer_line
    exemplars = tuple(s for s in task.shots if s.rephrased)[:shots] if prompt_format == "fewshot" else ()

    def rephrase_prompt(question: str, example_words: int | None) -> str:
        return rephrase_t.format(question=question, n=example_words or 2)

    def answering(prompt: str) -> str:
        return prompt + ("\n" + ANSWER_FORMAT if answer_line else "")

    newline = "\n" if exemplars else ""
    one_step_prefix = "".join(
        answering(ONE_STEP.format(question=s.question)) + f"\n{s.rephrased} The answer is {s.answer}.\n\n" for s in exemplars
    )
    rephrase_prefix = "".join(rephrase_prompt(s.question, _words(s.question)) + f"\n{s.rephrased}\n\n" for s in exemplars)
    respond_prefix = "".join(
        answering(respond_t.format(rephrased=s.rephrased)) + f"\nThe answer is {s.answer}.\n\n" for s in exemplars
    )

    def one_step(example: Example, lm) -> Trace:
        calls: list[Call] = []
        text = one_step_prefix + answering(ONE_STEP.format(question=task.question(example))) + newline
        reply = ask(lm, text, calls=calls, name="rephrase_and_respond", prompt_format=prompt_format, max_tokens=max_tokens, stop=STOP)
        return _finish(task, example, "rar1", reply.text, calls)

    def two_step(example: Example, lm) -> Trace:
        calls: list[Call] = []
        k = getattr(lm, "sample", 0)
        shared = k // responses_per_rephrasing - k  # rephrase as sample k // m (see the module docstring)
        words = len(example.inputs["words"]) if "words" in example.inputs else None
        text = rephrase_prefix + rephrase_prompt(task.question(example), words) + newline
        rephrased = ask(lm, text, calls=calls, name="rephrase", prompt_format=prompt_format, max_tokens=max_tokens, stop=STOP,
                        first_sample=shared).text.strip()
        text = respond_prefix + answering(respond_t.format(rephrased=rephrased)) + newline
        reply = ask(lm, text, calls=calls, name="respond", prompt_format=prompt_format, max_tokens=max_tokens, stop=STOP)
        return _finish(task, example, "rar2", reply.text, calls, rephrased=rephrased)

    return one_step if steps == 1 else two_step


def _words(question: str) -> int | None:
    """How many quoted words an exemplar's last-letters question has (None for other tasks)."""
    quoted = re.search(r'"([^"]+)"', question)
    return len(quoted.group(1).split()) if quoted else None


def _finish(task: Task, example: Example, method: str, text: str, calls: list[Call], **meta) -> Trace:
    readable = not task.rar_templates.answer_line or "answer is" in text.lower()
    answer = task.parse_answer(text) if readable else None
    error = None if answer is not None else f"no answer in: {text[-80:]!r}"
    return Trace(example.id, method, answer, calls, error=error, meta=meta)


class RaRConfig(System2Method):
    """Rephrase and Respond, 1-step (Figure 3) or 2-step (the task's rephrase and respond prompts)."""

    name: Literal["rar"] = "rar"
    steps: Literal[1, 2] = Field(2, description="1: rephrase and answer in one call (Figure 3); 2: rephrase, then "
                                 "answer the rephrased question alone (Figures 4 and 5)")
    responses_per_rephrasing: int = Field(1, ge=1, le=MAX_SAMPLES, description="2-step: responses sampled per "
                                          "rephrasing (Yu et al.: 8 per stage, with samples: 64)")


register(RaRConfig, rar, "System 2: Rephrase and Respond, 1-step (steps: 1) or 2-step (rephrase, then answer)")
