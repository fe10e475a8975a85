"""How a method asks the model one thing, in either prompt format a recipe can choose.

- `fewshot`: the text goes to the model as a raw prompt, after solved exemplars, and the reply is
  read up to a stop string: what a pretrained model (like the embedded Gemma 3 270M) follows.
- `chat`: the instruction goes as one user message through the model's chat template (the
  OpenAI-compatible backend sends messages as they are): what instruction-tuned models expect.

Every call is recorded in the trace with its prompt, output, token counts and finish reason, so
a method's cost is the sum over its calls and an output cut at its budget is known as such
(`Trace.truncated`).
"""

from __future__ import annotations

from typing import Literal

from s2distill.types import Call, Completion, Request

PromptFormat = Literal["fewshot", "chat"]


def ask(
    lm,
    text: str,
    *,
    calls: list[Call],
    name: str,
    prompt_format: PromptFormat,
    max_tokens: int,
    stop: tuple[str, ...] = (),
    temperature: float | None = None,
    first_sample: int = 0,
) -> Completion:
    """Send `text` as a raw prompt (fewshot) or a user message (chat); append the call to `calls`.

    `first_sample` shifts the sample index the run gives this call (the runner adds its own), so a
    multi-call method can share one call's output between several of its samples (RaR's N
    responses per rephrasing)."""
    if prompt_format == "chat":
        request = Request(messages=(("user", text),), max_tokens=max_tokens, temperature=temperature, first_sample=first_sample)
    else:
        request = Request(prompt=text, max_tokens=max_tokens, stop=stop, temperature=temperature, first_sample=first_sample)
    [completion] = lm.generate([request])[0]
    calls.append(Call(text, completion.text, completion.usage, name, logprob=completion.logprob,
                      finish_reason=completion.finish_reason))
    return completion
