"""System 1: answer directly, with few-shot question–answer pairs and no reasoning.

The same prompt is the student's input in distillation, so the distilled model is scored on
exactly the prompt the baseline System 1 gets.

Two prompt formats (`prompt_format`, chosen per recipe):

- `fewshot`: a raw prompt, `Q: ...\nA:` after `shots` solved exemplars in the same frame, read up
  to a stop string: what a pretrained model follows.
- `chat`: chat messages, the bare question as the user turn (the paper's System 1 is a zero-shot
  chat model asked the question alone, Yu et al. 2024) and, with `shots > 0`, each exemplar as an
  earlier user/assistant exchange; no `Q:/A:` frame. The model's chat template frames the turns, the
  reply ends at its end-of-turn token, and the answer is read from the reply (its first non-empty
  line for single-line tasks).

Which part of the reply holds the answer (`response`): `first_line` (the default, and the only
behaviour before the setting existed) reads a one-line task's answer from the reply's first line,
as a pretrained model prompted `Q: ...\nA:` gives it; `full` reads it from the whole reply, which is
the papers' System 1: a chat model's full response to the bare question (Yu et al. 2024, Section
4.1: "zero-shot inference using the instruction-tuned base model"; their Table 1 counts 27-62
generated tokens per System 1 answer, Table 2 165; TwT's vanilla students write 150-279, Table 1).
A fewshot prompt then stops at a blank line, not at the first newline. Tasks whose answers span
lines (code) read the whole reply either way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from s2distill.config.base import added_field
from s2distill.methods.calls import PromptFormat
from s2distill.methods.registry import PromptedMethod, register
from s2distill.tasks import Task
from s2distill.types import Call, Example, Request, Trace

SHOT = "Q: {question}\nA: {answer}\n\n"
QUERY = "Q: {question}\nA:"
STOP = ("\n",)
Response = Literal["first_line", "full"]
# A student trained to reason before answering (full or compressed reasoning) writes several
# lines; it stops where a new exemplar would begin.
MULTILINE_STOP = ("\n\n", "\nQ:")


def direct_prompt(task: Task, example: Example, *, shots: int, task_prefix: str = "", question_suffix: str = "",
                  context: str = "") -> str:
    """The System 1 prompt: `shots` solved exemplars, then the question; `task_prefix` (Distilling
    Step-by-Step's "[label] " or "[rationale] ", Hsieh et al. 2023) goes before all of it, and
    `question_suffix` after every question, the exemplars' too (Yu et al. 2024, Table 6's "Data Input
    Prompt" "{question} Flip means reverse.", which is zero-shot: with exemplars, their questions
    carry the same words so that the prompt's pattern holds). `context`: privileged text after the
    asked question alone, before the answer cue (context distillation's teacher: distill/soft.py)."""
    prefix = "".join(SHOT.format(question=s.question + question_suffix, answer=s.answer) for s in task.shots[:shots])
    return task_prefix + prefix + QUERY.format(question=with_context(task.question(example) + question_suffix, context))


def with_context(question: str, context: str) -> str:
    """The asked question with privileged context after it: TRL SDFT's teacher prompt template,
    "{prompt}\\n\\n{privileged_context}", applied to the question, so that a few-shot prompt still
    ends on its answer cue."""
    return f"{question}\n\n{context}" if context else question


def direct_messages(task: Task, example: Example, *, shots: int, task_prefix: str = "",
                    question_suffix: str = "", context: str = "") -> tuple[tuple[str, str], ...]:
    """The System 1 prompt as chat messages (role, content): each exemplar as a user turn (its question)
    and an assistant turn (its answer), then the question as the last user turn. `task_prefix` and
    `question_suffix` go where the few-shot prompt has them: the prefix before all of it (the first
    user turn), the suffix after every question, `context` after the asked question alone."""
    messages: list[tuple[str, str]] = []
    for shot in task.shots[:shots]:
        messages += [("user", shot.question + question_suffix), ("assistant", shot.answer)]
    messages.append(("user", with_context(task.question(example) + question_suffix, context)))
    role, content = messages[0]
    messages[0] = (role, task_prefix + content)
    return tuple(messages)


def chat_text(messages) -> str:
    """Chat messages as one text, for a trace's call record and the report: a lone user turn is its
    content; several turns are each `[role] content`, blank-line separated. Takes (role, content)
    pairs or TRL's {"role", "content"} dicts."""
    turns = [(m["role"], m["content"]) if isinstance(m, dict) else tuple(m) for m in messages]
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n\n".join(f"[{role}] {content}" for role, content in turns)


def direct_completion(answer: str) -> str:
    """How an answer follows the System 1 prompt: the target of answer-only distillation."""
    return f" {answer}\n"


def direct(task: Task, *, shots: int = 4, max_tokens: int | None = None, multiline: bool = False,
           task_prefix: str = "", question_suffix: str = "", prompt_format: PromptFormat = "fewshot",
           response: Response = "first_line"):
    """Build the System 1 program for `task`.

    `multiline` is for students distilled on reasoning: the answer is read from a closing
    "The answer is X." line when there is one (else from the first line). `task_prefix` starts the
    prompt: a Distilling Step-by-Step student is asked with "[label] " (s2distill/distill/pairs.py).
    `question_suffix` follows each question (`question_suffix: " Flip means reverse."`,
    Yu et al. 2024 Table 6); distillation sets use the student's suffix too (s2distill/distill/pairs.py).
    `prompt_format: chat` asks in chat messages (see the module docstring) with no stop strings.
    `response: full` reads the answer from the whole reply (the module docstring)."""
    several_lines = multiline or task.multiline_answers or response == "full"
    stop = MULTILINE_STOP if several_lines else STOP
    max_tokens = max_tokens or (256 if task.multiline_answers else 16)

    def program(example: Example, lm) -> Trace:
        if prompt_format == "chat":
            messages = direct_messages(task, example, shots=shots, task_prefix=task_prefix, question_suffix=question_suffix)
            request, prompt = Request(messages=messages, max_tokens=max_tokens), chat_text(messages)
        else:
            prompt = direct_prompt(task, example, shots=shots, task_prefix=task_prefix, question_suffix=question_suffix)
            request = Request(prompt=prompt, max_tokens=max_tokens, stop=stop)
        [completion] = lm.generate([request])[0]
        text = completion.text
        if prompt_format == "chat" and not several_lines:  # the reply's first line, as the fewshot stop cuts it
            text = next((line for line in text.splitlines() if line.strip()), "")
        answer = task.parse_answer(text)
        return Trace(
            example.id, "direct", answer, [Call(prompt, completion.text, completion.usage, "answer", completion.logprob,
                                                 completion.finish_reason)],
            error=None if answer is not None else f"unparseable answer: {completion.text[:80]!r}",
        )

    return program


class DirectConfig(PromptedMethod):
    """System 1: the question answered directly, after `shots` solved exemplars."""

    name: Literal["direct"] = "direct"
    question_suffix: str = Field("", description="text after every question, the exemplars' too (Yu et al. 2024 "
                                 "Table 6: \" Flip means reverse.\"); the student's goes into its training prompts")
    response: Response = added_field(
        "first_line", description="where a one-line answer is read: first_line (the reply's first line, as a "
        "pretrained model answers after 'A:') or full (the whole reply: a chat model's full response, the papers' "
        "System 1; a fewshot prompt then stops at a blank line). Code answers are read whole either way")


register(DirectConfig, direct, "System 1: question -> answer, no reasoning; few-shot Q:/A: prompt, or the bare "
         "question as a chat user turn")
