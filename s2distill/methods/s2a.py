"""System 2 Attention (Weston and Sukhbaatar 2023, arXiv 2311.11829), with the prompts of Yu et al.
2024's Figure 6 ("Distilling System 2 into System 1", appendix A.1), verbatim.

The first call (Figure 6, top) rewrites the user's text, keeping only the unbiased context and the
actual question under the figure's two labels. The second call (Figure 6, bottom) is
"{input}\n\nAnswer in an unbiased way.", its {input} being that extraction, so the model never
sees the original, opinionated text when it answers: the point of S2A, and the tests check it.
The second call's reply is the distillation target (`Trace.final_response`), as the figure's
caption says.

What fills the second {input}: the extracted context, a blank line, then the extracted question,
without the two labels (the context is left out when the extraction says there is none). The
figure names the slot only; this is our reading of it. If the model omits the labels, the whole
extraction is the {input} and the trace records `labels_missing`.

Additions for pretrained models (the `fewshot` format), which do not change the method: up to
`shots` worked exemplars (`exemplars.S2A`) before each call, showing an extraction and an answer
and nothing else, and an "Answer:" cue after the second prompt so the reply starts with the answer.
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

CONTEXT_LABEL = "Unbiased text context (includes all content except user’s bias):"
QUESTION_LABEL = "Question/Query (does not include user bias/preference):"
# Figure 6, top (curly quotes as in the paper).
EXTRACT = (
    "Given the following text by a user, extract the part that is unbiased and not their opinion, so that using that "
    "text alone would be good context for providing an unbiased answer to the question portion of the text. Please "
    "include the actual question or query that the user is asking. Separate this into two categories labeled with "
    f"“{CONTEXT_LABEL}” and “{QUESTION_LABEL}”.\n\n"
    "Text by User: {text}"
)
# Figure 6, bottom.
ANSWER = "{input}\n\nAnswer in an unbiased way."
FEWSHOT_CUE = "\nAnswer:"  # added in the fewshot format only
_LABELS = re.compile(
    r"Unbiased text context[^:\n]*:\s*(?P<context>.*?)\s*Question/Query[^:\n]*:\s*(?P<question>.*)", re.DOTALL | re.IGNORECASE
)


def answer_input(context: str, question: str) -> str:
    """The {input} of Figure 6's second prompt: the extracted context and question, unlabelled."""
    if not question:
        return context
    if not context or context.strip().lower().rstrip(".") in ("none", "n/a", ""):
        return question
    return f"{context}\n\n{question}"


def parse_extraction(text: str) -> tuple[str, str, bool]:
    """Split the first call's output into (context, question, labels_found)."""
    match = _LABELS.search(text)
    if not match:
        return text.strip(), "", False
    return match.group("context").strip().strip('"'), match.group("question").strip().strip('"'), True


def s2a(task: Task, *, max_tokens: int = 256, answer_tokens: int = 64, prompt_format: PromptFormat = "chat", shots: int = 2):
    """Build the S2A program: extract (context, question), then answer from them alone.

    The biased input text is `example.inputs["text"]` when the task provides it (opinionated
    prompts), else the task's question.
    """
    shown = exemplars.S2A[:shots] if prompt_format == "fewshot" else ()
    extract_prefix = "".join(EXTRACT.format(text=e["text"]) + "\n" + e["extraction"] + "\n\n" for e in shown)
    answer_prefix = "".join(
        ANSWER.format(input=answer_input(e["context"], e["question"])) + FEWSHOT_CUE + f" {e['answer']}\n\n" for e in shown
    )
    cue = FEWSHOT_CUE if prompt_format == "fewshot" else ""
    answer_stop = ("\n",) if shown else ("\n\n",)

    def program(example: Example, lm) -> Trace:
        calls: list[Call] = []
        original = example.inputs.get("text") or task.question(example)
        extraction = ask(lm, extract_prefix + EXTRACT.format(text=original) + ("\n" if shown else ""), calls=calls,
                         name="extract", prompt_format=prompt_format, max_tokens=max_tokens,
                         stop=("\n\nGiven the following text", "\n\nText by User:")).text
        context, question, labelled = parse_extraction(extraction)
        prompt = answer_prefix + ANSWER.format(input=answer_input(context, question)) + cue
        reply = ask(lm, prompt, calls=calls, name="answer", prompt_format=prompt_format, max_tokens=answer_tokens, stop=answer_stop)
        answer = task.parse_answer(reply.text)
        return Trace(
            example.id, "s2a", answer, calls, error=None if answer is not None else f"unparseable answer: {reply.text[:80]!r}",
            meta={"context": context, "question": question, "labels_missing": not labelled},
            final_response=reply.text.strip(),
        )

    return program


class S2AConfig(System2Method):
    """System 2 Attention: extract the unbiased context and question (`max_tokens`), then answer from
    them alone (`answer_tokens`)."""

    name: Literal["s2a"] = "s2a"
    answer_tokens: int = Field(64, ge=1, le=1_000_000, description="the answering call's budget")


register(S2AConfig, s2a, "System 2: System 2 Attention: extract unbiased context and question, answer from them alone")
