"""TwT teacher prompts (Xu et al. 2025, "TwT: Thinking without Tokens by Habitual Reasoning
Distillation with Multi-Teachers' Guidance", Findings of EMNLP 2025), verbatim from its appendix.

A TwT teacher answers with its reasoning, its answer and a self-reported confidence: it rates its
own response on weighted criteria and ends with `score: 0.xx`, the weighted total (Section 3.1.1,
Eq. 1; appendix C). Curation's quality selection keeps outputs whose score reaches a threshold
(0.95 in the paper).

Figure 4 gives one teacher prompt per data set, each with its own criteria and weights:
MBPP (`code`: correctness 50%, readability 20%, execution efficiency 20%, test coverage 10%),
CQA (`multiple_choice`: correctness 50%, logical reasoning 25%, clarity 15%, completeness 10%) and
MetaMath (`math`, used for GSM8K: the same four as CQA). The texts below are Figure 4's, with
its printed "\\n" markers as line breaks and three spots the text extraction garbled restored:
MBPP's "\\n" printed as "In" before "Please assign", and the backticks of MBPP's and MetaMath's
response format examples. Typos are kept ("there is unnecessary redundant code", "anexact").
The query follows the prompt as Figure 5 shows it for MBPP ("Question:" ... "# Test Cases:" ...);
other data sets' queries are "Question:" and the task's question (the paper shows MBPP's only).

`general` (last letters, coin flip, TriviaQA: tasks the paper does not run) departs: it is the
MetaMath prompt with "a math question" read as "a question" and "The number for the problem" as
"The answer to the question", the criteria and weights unchanged.

Figure 8 is the refinement prompt (`refine_rationale`), HaRD stage 2: the teacher compares its
thinking with the student's and rewrites it to the student's style and length. Figure 8 gives the
instruction only; the question, the teacher's original thinking and the student's response that
it compares are laid out after it under plain labels (our reading).

Addition for pretrained models (the `fewshot` format): worked exemplars (`exemplars.TWT`) first,
in the figure's response format. There are two per family, one scoring itself above the 0.95
threshold and one below it, so the exemplars do not teach a score that decides the filter.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

import s2distill.methods.exemplars as exemplars
from s2distill.methods.calls import PromptFormat, ask
from s2distill.methods.registry import System2Method, register
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

# Figure 4, MBPP.
CODE = """You are a helpful assistant. Your task is to implement a Python function based on the following guidelines. Please think step by step to analyze the question carefully and give your clear thinking step to solve the problem. Ensure that it passes all three provided test cases which use assert statements for validation.
1. Function Name: Use the exact function name provided in the test cases.
2. Input and Output: The function should accept the same number and types of input arguments and return the same type of output as specified in the test cases.
3. Function Behavior: The function should pass all three provided test cases when executed.
4. Allowed Libraries: You may use any standard Python libraries.
5. Confidence Score: After completing the code, please assign a confidence score between 0.00 and 1.00 to your code based on the following criteria:
(1) Correctness (50% weight): Whether the functionality is implemented correctly and all test cases are passed.
(2) Readability (20% weight): Whether the code structure is clear, variable and function names are meaningful.
(3) Execution Efficiency (20% weight): Whether the algorithm is efficient and there is unnecessary redundant code.
(4) Test Coverage (10% weight): Whether possible edge cases and exceptions are considered.
Please assign a score for each category based on the weight, then calculate the weighted total score. The final score should be in the format score: 0.85. Please provide a clear numerical value without any additional explanation.
6. Response Format: Your response must include three parts:
(1) Thinking: A detailed step-by-step explanation of your approach.
(2) Code: The Python code implementing the function, without additional explanations.
(3) Score: Your confidence score as specified.
Response Format Example: "Thinking: (Your detailed explanation here.)"
"```python (Your Python code goes here)```"
"score: 0.85 (Do not give any explanation)\""""
# Figure 4, CQA.
MULTIPLE_CHOICE = """You are a helpful assistant. Your task is to answer questions based on provided options. Each input consists of a question and five answer choices.
Instructions:
1. Confidence Score: After giving the answer, please assign a confidence score between 0.00 and 1.00 to your answer based on the following:
(1) Correctness (50%): The answer is factually correct.
(2) Logical Reasoning (25%): The explanation demonstrates clear and reasonable reasoning.
(3) Clarity (15%): The response is easy to follow.
(4) Completeness (10%): All necessary aspects of the question are addressed.
2. Response Format: Your response must include three parts:
(1) Thinking: A detailed step-by-step explanation of your approach.
(2) Answer: The answer choice without additional explanations.
(3) Score: Your confidence score as specified.
Response Format Example: "Thinking: [your thinking process] "; "The answer is: [answer choice] "; "score: [an exact number, for example: 0.85] \""""
# Figure 4, MetaMath.
MATH = """You are a helpful assistant. Your task is to answer a math question. Please think step by step to analyze the question carefully and give your clear thinking step to solve the problem.
1. Confidence Score: After solving the problem, please assign a confidence score between 0.00 and 1.00 to your answer based on the following:
(1) Correctness (50% weight): the answer is factually correct based on the information or reasoning provided.
(2) Logical Reasoning (25% weight): Whether the analysis exhibits a clear, reasonable thought process.
(3) Clarity (15% weight): The reasoning should be easy to follow, avoiding unnecessary complexity.
(4) Completeness (10% weight): The analysis should cover all necessary aspects of the question. Please assign a score for each category based on the weight, then calculate the weighted total score. The final score should be in the format score: 0.85.
2. Response Format: Your response must include three parts:
(1) Thinking: A detailed step-by-step explanation of your approach.
(2) Answer: The number for the problem, without additional explanations.
(3) Score: Your confidence score as specified.
Response Format Example: ```Thinking:[your thinking process] ```; ```The answer is: [anexact number]```; ```score: [an exact number, for example: 0.85]```"""
# Not in the paper: MetaMath's prompt for a question that is not a math problem (see above).
GENERAL = MATH.replace("answer a math question", "answer a question").replace(
    "(2) Answer: The number for the problem,", "(2) Answer: The answer to the question,").replace(
    "[anexact number]", "[your answer]")

# Each family's prompt and its criteria with their weights (Figure 4; appendix C for MBPP).
FAMILIES: dict[str, tuple[str, tuple[tuple[str, float], ...]]] = {
    "code": (CODE, (("correctness", 0.5), ("readability", 0.2), ("execution efficiency", 0.2), ("test coverage", 0.1))),
    "multiple_choice": (MULTIPLE_CHOICE, (("correctness", 0.5), ("logical reasoning", 0.25), ("clarity", 0.15),
                                          ("completeness", 0.1))),
    "math": (MATH, (("correctness", 0.5), ("logical reasoning", 0.25), ("clarity", 0.15), ("completeness", 0.1))),
    "general": (GENERAL, (("correctness", 0.5), ("logical reasoning", 0.25), ("clarity", 0.15), ("completeness", 0.1))),
}
# Figure 5: the MBPP query after the prompt.
CODE_QUERY = (
    "Question:\n{text} \n# Test Cases: \n{tests}\nGive me the answer based on the instructions and test cases "
    "following the examples above."
)
QUERY = "Question:\n{question}"
# Figure 8: the refinement instruction; the material it compares follows under plain labels (ours).
REFINE = (
    "Please compare your previous thinking process on this task with the student's thinking process in detail.\n"
    "After identifying any differences in style, tone, structure, and length, modify your original output to better "
    "align with the student's preferences.\n"
    "Ensure that your revised output maintains a similar length and depth of content as the student's version, while "
    "preserving all essential information.\n"
    "The goal is to make your response more suited to the student's learning ability, helping them better understand "
    "and grasp the content.\n\n"
    "Task: {question}\nYour previous thinking process: {rationale}\nYour answer: {answer}\n"
    "The student's thinking process: {student}\n\nYour revised thinking process:"
)
# TwT Table 6's "Compressor" alternative to teacher-guided compression. The paper names it only
# ("Fixed-Length or Compressor-based methods", Section 4.5) and prints no prompt: this wording is
# ours, Figure 8's instruction without the student, so the two differ in the student's output alone.
COMPRESS = (
    "Please compress your previous thinking process on this task.\n"
    "Keep every step needed to reach the answer and drop everything else, preserving all essential "
    "information.\n\n"
    "Task: {question}\nYour previous thinking process: {rationale}\nYour answer: {answer}\n\n"
    "Your compressed thinking process:"
)
_THINKING = re.compile(r"Thinking:\s*(?P<thinking>.*?)\s*(?=```|\bThe answer is\b|^\s*Answer:|^\s*Code:|score:|\Z)",
                       re.DOTALL | re.IGNORECASE | re.MULTILINE)
_ANSWER = re.compile(r"(?:\bThe answer is|^\s*Answer)\s*:?\s*(?P<answer>[^\n]*)", re.IGNORECASE | re.MULTILINE)
_CODE = re.compile(r"```(?:python)?\s*\n?(?P<code>.*?)```", re.DOTALL)
_SCORE = re.compile(r"score:\s*\**\s*([01](?:\.\d+)?|\.\d+)", re.IGNORECASE)


def teacher_prompt(family: str, task: Task, example: Example) -> str:
    """Figure 4's prompt for `family`, then the query (Figure 5's layout for MBPP)."""
    inputs = example.inputs
    if family == "code" and "text" in inputs and "tests" in inputs:
        query = CODE_QUERY.format(text=inputs["text"], tests="\n".join(inputs["tests"]))
    else:
        query = QUERY.format(question=task.question(example))
    return FAMILIES[family][0] + "\n\n" + query


def parse_teacher_output(text: str) -> tuple[str, str, float | None]:
    """(reasoning, answer text, confidence) from a teacher's reply; confidence None if absent.

    The answer text is the ```python block when there is one (MBPP's "Code" part), else what follows
    "The answer is:" (or an "Answer:" line). The last `score:` counts; values outside [0, 1] are
    not confidences and read as None.
    """
    thinking_match = _THINKING.search(text)
    thinking = thinking_match.group("thinking").strip() if thinking_match else ""
    after = text[thinking_match.end():] if thinking_match else text
    code = _CODE.search(after)
    stated = _ANSWER.search(after)
    if code:
        answer = "```python\n" + code.group("code").strip() + "\n```"
    elif stated:
        answer = stated.group("answer").strip().strip('"`').strip()
    else:
        answer = "" if thinking_match else text.strip()
    scores = _SCORE.findall(text)
    confidence = float(scores[-1]) if scores else None
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        confidence = None
    return thinking, answer, confidence


def twt_teacher(task: Task, *, family: str | None = None, prompt_format: PromptFormat = "chat", max_tokens: int = 512, shots: int = 2):
    """Build the TwT teacher program for `task` (family: the task's `twt_family` unless given).

    In the `fewshot` format up to `shots` of the family's worked exemplars (`exemplars.TWT`) come
    first, and the reply is primed with "Thinking:".
    """
    family = family or task.twt_family
    if family not in FAMILIES:
        raise ValueError(f"unknown TwT family {family!r}; known: {', '.join(FAMILIES)}")
    prefix = ""
    if prompt_format == "fewshot":
        prefix = "".join(
            FAMILIES[family][0] + "\n\n" + e["query"] + "\n" + e["reply"] + "\n\n\n"
            for e in exemplars.TWT[family][:shots]
        )

    def program(example: Example, lm) -> Trace:
        calls: list[Call] = []
        text = prefix + teacher_prompt(family, task, example)
        if prompt_format == "fewshot":
            text += "\nThinking:"
        reply = ask(lm, text, calls=calls, name="teach", prompt_format=prompt_format, max_tokens=max_tokens,
                    stop=("\n\n\n", "\nYou are a helpful assistant."))
        thinking, answer_text, confidence = parse_teacher_output(("Thinking:" if prompt_format == "fewshot" else "") + reply.text)
        answer = task.parse_answer(answer_text) if answer_text else None
        error = None if answer is not None else f"unparseable answer: {answer_text[:80]!r}"
        return Trace(example.id, "twt", answer, calls, error=error,
                     rationale=thinking, confidence=confidence, meta={"family": family})

    return program


class TwTConfig(System2Method):
    """A TwT teacher: reasoning, answer and a self-reported confidence, in its family's prompt."""

    name: Literal["twt"] = "twt"
    family: Literal[tuple(FAMILIES)] | None = Field(None, description="the teacher prompt: code, multiple_choice, "
                                                    "math or general (default: the task's)")


register(TwTConfig, twt_teacher, "System 2: TwT teacher: reasoning, answer and a self-reported confidence 'score: 0.xx'")


def refine_rationale(lm, *, question: str, rationale: str, answer: str, student: str | None, calls: list[Call],
                     prompt_format: PromptFormat = "chat", max_tokens: int = 256) -> str:
    """The teacher's rationale rewritten to the student's style and length (TwT's stage 2, Figure 8);
    with `student=None`, compressed without the student's output (`COMPRESS`, Table 6's compressor).

    In the `fewshot` format a worked rewrite (`exemplars.REFINE`) comes first, and the rewrite
    ends at the first blank line."""
    template = REFINE if student is not None else COMPRESS
    text = template.format(question=question, rationale=rationale, answer=answer, student=student)
    if prompt_format == "fewshot":
        text = "".join(template.format(**{k: e[k] for k in ("question", "rationale", "answer", "student")})
                       + "\n" + e["rewritten"] + "\n\n\n" for e in exemplars.REFINE) + text + "\n"
    stop = ("\n\n",) if prompt_format == "fewshot" else ("\n\nPlease compare",)
    return ask(lm, text, calls=calls, name="refine", prompt_format=prompt_format, max_tokens=max_tokens,
               stop=stop).text.strip()
