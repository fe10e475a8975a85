"""Rephrase and Respond (Deng et al. 2023, arXiv 2311.04205), as distilled by Yu et al. 2024.

1-step: one prompt asks the model to rephrase and expand the question, then respond.
2-step: the first call rephrases and expands the question; the second answers the original
question given the rephrased one.

The prompt texts are the RaR authors' (github.com/uclaml/Rephrase-and-Respond, main.py), with
their per-task line (`Task.rar_spec`, from their config.json: coin flip's "Answer the Yes or No
question."; last letters has none there). One addition, in both formats: the reply must end with
"The answer is X." The RaR paper scored replies by looking for the *labelled* answer in the text;
distillation has no label at curation time, so the answer must be extractable on its own.

Few-shot format (pretrained models): each call is preceded by the task's solved exemplars in the
same shape, with `Shot.rephrased` as the exemplar rephrasing. The distillation paper's task-specific
step-1 prompts are not in the sources available offline; where a task needs one it goes in
`rar_spec`.
"""

from __future__ import annotations

from s2distill.methods.calls import PromptFormat, ask
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

ONE_STEP = '"{question}"\nRephrase and expand the question, and respond. {spec}'
REPHRASE = (
    '"{question}"\nGiven the above question, rephrase and expand it to help you do better answering. '
    "Maintain all information in the original question."
)
RESPOND = "(original) {question}\n(rephrased) {rephrased}\n{spec}Use your answer for the rephrased question to answer the original question."
ANSWER_FORMAT = 'End your response with "The answer is <answer>."'
STOP = ("\n\n",)


def rar(task: Task, *, steps: int = 2, shots: int = 4, max_tokens: int = 128, prompt_format: PromptFormat = "fewshot"):
    """Build the 1-step or 2-step Rephrase-and-Respond program for `task`."""
    if steps not in (1, 2):
        raise ValueError(f"rar steps must be 1 or 2, got {steps}")
    spec = task.rar_spec
    exemplars = task.shots[:shots] if prompt_format == "fewshot" else ()

    newline = "\n" if exemplars else ""
    one_step_prefix = "".join(
        _with_format(ONE_STEP.format(question=s.question, spec=spec)) + f"\n{s.rephrased} {s.rationale} The answer is {s.answer}.\n\n"
        for s in exemplars
    )
    rephrase_prefix = "".join(REPHRASE.format(question=s.question) + f"\n{s.rephrased}\n\n" for s in exemplars)
    respond_prefix = "".join(
        _with_format(RESPOND.format(question=s.question, rephrased=s.rephrased, spec=spec))
        + f"\n{s.rationale} The answer is {s.answer}.\n\n"
        for s in exemplars
    )

    def one_step(example: Example, lm) -> Trace:
        calls: list[Call] = []
        text = one_step_prefix + _with_format(ONE_STEP.format(question=task.question(example), spec=spec)) + newline
        reply = ask(lm, text, calls=calls, name="rephrase_and_respond", prompt_format=prompt_format, max_tokens=max_tokens, stop=STOP)
        return _finish(task, example, "rar1", reply.text, calls)

    def two_step(example: Example, lm) -> Trace:
        calls: list[Call] = []
        question = task.question(example)
        text = rephrase_prefix + REPHRASE.format(question=question) + newline
        rephrased = ask(lm, text, calls=calls, name="rephrase", prompt_format=prompt_format, max_tokens=max_tokens, stop=STOP).text.strip()
        text = respond_prefix + _with_format(RESPOND.format(question=question, rephrased=rephrased, spec=spec)) + newline
        reply = ask(lm, text, calls=calls, name="respond", prompt_format=prompt_format, max_tokens=max_tokens, stop=STOP)
        return _finish(task, example, "rar2", reply.text, calls, rephrased=rephrased)

    return one_step if steps == 1 else two_step


def _with_format(prompt: str) -> str:
    return prompt.rstrip() + "\n" + ANSWER_FORMAT


def _finish(task: Task, example: Example, method: str, text: str, calls: list[Call], **meta) -> Trace:
    answer = task.parse_answer(text) if "answer is" in text.lower() else None
    error = None if answer is not None else f"no 'The answer is' in: {text[-80:]!r}"
    return Trace(example.id, method, answer, calls, error=error, meta=meta)
