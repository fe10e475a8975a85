"""System 2 Attention (Weston and Sukhbaatar 2023, arXiv 2311.11829).

The first call rewrites the input, keeping only the unbiased context and the actual question,
under the paper's two labels; the second call answers from that extraction alone: the model
never sees the original, opinionated text when it answers. That is the point of S2A, and the
tests check it.

The extraction prompt is the paper's (its Figure 2 template for factual questions with user
opinions). In the `fewshot` format, up to `shots` worked exemplars (`exemplars.S2A`) precede each
call. For the answer call the paper feeds the regenerated context and question back to the
model; the exact wording of that second template is not reproduced in the sources available
offline, so it is "{context}\n\nQuestion: {question}\nAnswer:" (few-shot) or the same text as a
user message (chat). If the model omits the labels, the whole extraction is used as the context
and the trace records `labels_missing`.
"""

from __future__ import annotations

import re

from s2distill.methods import exemplars
from s2distill.methods.calls import PromptFormat, ask
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

CONTEXT_LABEL = "Unbiased text context (includes all content except user's bias):"
QUESTION_LABEL = "Question/Query (does not include user bias/preference):"
EXTRACT = (
    "Given the following text by a user, extract the part that is unbiased and not their opinion, "
    "so that using that text alone would be good context for providing an unbiased answer to the "
    "question portion of the text.\n"
    "Please include the actual question or query that the user is asking. Separate this into two "
    f'categories labeled with "{CONTEXT_LABEL}" and "{QUESTION_LABEL}"\n\n'
    "Text by User: {text}\n"
)
ANSWER = "{context}\n\nQuestion: {question}\nAnswer:"
_LABELS = re.compile(
    r"Unbiased text context[^:\n]*:\s*(?P<context>.*?)\s*Question/Query[^:\n]*:\s*(?P<question>.*)", re.DOTALL | re.IGNORECASE
)


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
    extract_prefix = "".join(EXTRACT.format(text=e["text"]) + e["extraction"] + "\n\n" for e in shown)
    answer_prefix = "".join(ANSWER.format(context=e["context"], question=e["question"]) + f" {e['answer']}\n\n" for e in shown)
    answer_stop = ("\n",) if shown else ("\n\n",)

    def program(example: Example, lm) -> Trace:
        calls: list[Call] = []
        original = example.inputs.get("text") or task.question(example)
        extraction = ask(lm, extract_prefix + EXTRACT.format(text=original), calls=calls, name="extract",
                         prompt_format=prompt_format, max_tokens=max_tokens, stop=("\n\nGiven the following text", "\n\nText by User:")).text
        context, question, labelled = parse_extraction(extraction)
        prompt = answer_prefix + ANSWER.format(context=context, question=question or "(see above)")
        reply = ask(lm, prompt, calls=calls, name="answer", prompt_format=prompt_format, max_tokens=answer_tokens, stop=answer_stop)
        answer = task.parse_answer(reply.text)
        return Trace(
            example.id, "s2a", answer, calls, error=None if answer is not None else f"unparseable answer: {reply.text[:80]!r}",
            meta={"context": context, "question": question, "labels_missing": not labelled, "final_response": reply.text.strip()},
        )

    return program
