"""TwT teacher prompts (Xu et al. 2025, "TwT: Thinking without Tokens by Habitual Reasoning
Distillation with Multi-Teachers' Guidance", arXiv 2503.24198).

A TwT teacher answers with its reasoning, its answer and a self-reported confidence: it rates its
own response on weighted criteria and ends with `score: 0.xx`, the weighted total. Curation's
quality selection keeps outputs whose score reaches a threshold (0.95 in the paper). Prompts
differ by task family: code, multiple choice, math. `general` is ours, for tasks outside those
three (last letters, coin flip).

The refinement prompt (`refine_rationale`) is stage 2 of the paper's curriculum: the teacher
sees the student's own response after stage-1 training and rewrites its rationale to match the
student's style and length, keeping the answer.

Not verbatim: the paper's prompt texts are not in any source available offline. These prompts
follow its description (reasoning, answer, criteria-weighted self-score ending in `score:`,
per-family criteria, style- and length-matching refinement); the criteria and weights are ours.
"""

from __future__ import annotations

import re

from s2distill.methods import exemplars
from s2distill.methods.calls import PromptFormat, ask
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

FAMILIES: dict[str, tuple[str, tuple[tuple[str, float], ...]]] = {
    "math": (
        "Solve the following math problem. The final answer is a number.",
        (("every calculation is correct", 0.4), ("each step follows logically from the previous ones", 0.3),
         ("the final answer answers exactly what was asked", 0.3)),
    ),
    "multiple_choice": (
        "Answer the following multiple-choice question with the letter of the single best option.",
        (("the reasoning supports the chosen option", 0.4), ("the other options were considered and ruled out", 0.3),
         ("the choice agrees with common sense", 0.3)),
    ),
    "code": (
        "Write a Python function that solves the following task. Put the code of your answer in a ```python block.",
        (("the code is correct for every input, edge cases included", 0.5),
         ("it uses the function name and signature the task requires", 0.3), ("it runs without errors", 0.2)),
    ),
    "general": (
        "Answer the following question.",
        (("the answer is correct", 0.5), ("the reasoning is complete and logically sound", 0.3),
         ("the answer is in the form the question asks for", 0.2)),
    ),
}
TEACHER = (
    "{instruction}\n\n{question}\n\n"
    "Respond in exactly this format:\n"
    "Thinking: <your step-by-step reasoning>\n"
    "Answer: <your final answer>\n"
    "Confidence: rate your response from 0 to 1 on each criterion below, then give the weighted total.\n"
    "{criteria}\n"
    "score: <the weighted total, between 0 and 1, with two decimals>"
)
REFINE = (
    "Below are a question, your reasoning and answer, and a student model's own response to the same "
    "question. Rewrite your reasoning so that it matches the student's style and length: keep only the "
    "steps the student needs to reach the answer, written the way the student writes, and do not change "
    "the answer.\n\n"
    "Question: {question}\nYour reasoning: {rationale}\nYour answer: {answer}\nStudent's response: {student}\n\n"
    "Rewritten reasoning:"
)
_SECTION = re.compile(
    r"Thinking:\s*(?P<thinking>.*?)\s*Answer:\s*(?P<answer>.*?)\s*(?:Confidence:|score:|$)", re.DOTALL | re.IGNORECASE
)
_SCORE = re.compile(r"score:\s*\**\s*([01](?:\.\d+)?|\.\d+)", re.IGNORECASE)


def criteria_lines(family: str) -> str:
    return "\n".join(f"- {name} (weight {weight:g})" for name, weight in FAMILIES[family][1])


def parse_teacher_output(text: str) -> tuple[str, str, float | None]:
    """(reasoning, answer text, confidence) from a teacher's reply; confidence None if absent.

    The last `score:` counts (criterion lines may carry scores of their own); values outside
    [0, 1] are not confidences and read as None.
    """
    match = _SECTION.search(text)
    thinking, answer = (match.group("thinking").strip(), match.group("answer").strip()) if match else ("", text.strip())
    scores = _SCORE.findall(text)
    confidence = float(scores[-1]) if scores else None
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        confidence = None
    return thinking, answer, confidence


def twt_teacher(task: Task, *, family: str | None = None, prompt_format: PromptFormat = "chat", max_tokens: int = 512, shots: int = 1):
    """Build the TwT teacher program for `task` (family: the task's `twt_family` unless given).

    In the `fewshot` format the family's worked exemplar (`exemplars.TWT`) comes first.
    """
    family = family or task.twt_family
    if family not in FAMILIES:
        raise ValueError(f"unknown TwT family {family!r}; known: {', '.join(FAMILIES)}")
    instruction, _ = FAMILIES[family]
    prefix = ""
    if prompt_format == "fewshot" and shots:
        shown = exemplars.TWT[family]
        prefix = TEACHER.format(instruction=instruction, question=shown["question"], criteria=criteria_lines(family)) + "\n\n" + shown["reply"] + "\n\n\n"

    def program(example: Example, lm) -> Trace:
        calls: list[Call] = []
        text = prefix + TEACHER.format(instruction=instruction, question=task.question(example), criteria=criteria_lines(family))
        if prompt_format == "fewshot":
            text += "\n\nThinking:"
        reply = ask(lm, text, calls=calls, name="teach", prompt_format=prompt_format, max_tokens=max_tokens,
                    stop=("\n\n\n",)).text
        thinking, answer_text, confidence = parse_teacher_output(("Thinking: " if prompt_format == "fewshot" else "") + reply)
        answer = task.parse_answer(answer_text) if answer_text else None
        error = None if answer is not None else f"unparseable answer: {answer_text[:80]!r}"
        return Trace(example.id, "twt", answer, calls, error=error,
                     meta={"rationale": thinking, "confidence": confidence, "family": family})

    return program


def refine_rationale(lm, *, question: str, rationale: str, answer: str, student: str, calls: list[Call],
                     prompt_format: PromptFormat = "chat", max_tokens: int = 256) -> str:
    """The teacher's rationale rewritten to the student's style and length (TwT's stage 2).

    In the `fewshot` format a worked rewrite (`exemplars.REFINE`) comes first, and the rewrite
    ends at the first blank line."""
    text = REFINE.format(question=question, rationale=rationale, answer=answer, student=student)
    if prompt_format == "fewshot":
        text = "".join(REFINE.format(**{k: e[k] for k in ("question", "rationale", "answer", "student")})
                       + "\n" + e["rewritten"] + "\n\n\n" for e in exemplars.REFINE) + text + "\n"
    stop = ("\n\n",) if prompt_format == "fewshot" else ("\n\nQuestion:",)
    return ask(lm, text, calls=calls, name="refine", prompt_format=prompt_format, max_tokens=max_tokens,
               stop=stop).text.strip()
