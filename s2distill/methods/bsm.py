"""Branch-Solve-Merge for pairwise judging (Saha et al. 2023, arXiv 2310.15123), with the prompts
of Yu et al. 2024 ("Distilling System 2 into System 1", appendix A.1), verbatim.

branch (Figure 7): the model proposes an evaluation plan for the question: up to five criteria,
        one a line.
solve (Figure 8):  one call per criterion scores both responses 1-5 (Assistant A on the first line,
        B on the second), judging that criterion alone.
merge (Figure 9):  "llm" (default): the solve outputs, then the figure's instruction to combine the
        points, summarise and give [[A]], [[B]] or [[C]] (tie); the merge call does not see the
        question or the responses again, only the evaluations, as in the figure. "average": no
        call, the higher total score wins (Section 4.4 describes the merge as averaging the scores).

So BSM makes 1 + k + 1 calls (1 + k with the averaging merge), k being the number of criteria the
branch returned. Inputs: `example.inputs` holds "question", "response_a" and "response_b"; the
answer is "A", "B" or "C", or None with the reason when the verdict cannot be parsed. The merge
call's reply is the "Distill System 2" target (`Trace.final_response`, Figure 13, middle); the
verdict alone is the "label only" target (Figure 13, bottom).

Verbatim: the figures' texts as the paper copies print them, typos and typographic apostrophes
included ("descrition" is in Figure 7 as Saha et al. wrote it; one copy prints it corrected).
Our reading where the figures name a slot only: {solve_output} is every criterion's solve reply,
numbered, under its criterion's name; {eval_criterion} is the criterion's line of the plan and
{criterion_name} its name. The merge instruction says "five points" whatever the number of
criteria, as in the paper.

Addition for pretrained models (the `fewshot` format): up to `shots` worked exemplars
(`exemplars.BSM`) before each call, showing a plan, a two-line score and a merged judgement, and
nothing else. They are balanced: one prefers A, one prefers B, so use an even `shots` (default 2).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

import s2distill.methods.exemplars as exemplars
from s2distill.methods.calls import PromptFormat, ask
from s2distill.methods.registry import MethodConfigBase, register
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

# Figure 7: branch.
BRANCH = (
    "We want to evaluate the quality of the responses provided by two AI assistants to the user question "
    "displayed below. Your task is to propose an evaluation plan that can be executed to compare the two "
    "responses. The evaluation plan should consist of a list of up to five factors that one should consider "
    "such as helpfulness, relevance, accuracy, etc. In each line, write an evaluation criterion along with a "
    "short descrition of how we should evaluate that criterion.\n\nUser Question: {question}\n\nEvaluation Plan:"
)
# Figure 8: solve.
SOLVE = (
    "You are given a user question and responses provided by two AI assistants. Your task is to evaluate and "
    "score the quality of the responses based on a single evaluation criterion displayed below. Make sure to "
    "evaluate only based on the criterion specified and none other. In the first line, provide a score between "
    "1 to 5 for Assistant A’s response. In the second line, provide a score between 1 to 5 for Assistant B’s "
    "response.\n\n[User Question]\n{question}\n[The Start of Assistant A’s Answer]\n{response_a}\n"
    "[The End of Assistant A’s Answer]\n[The Start of Assistant B’s Answer]\n{response_b}\n"
    "[The End of Assistant B’s Answer]\n[Evaluation Criterion]\n{criterion}\n[End of Evaluation Criterion] "
    "Evaluation of {criterion_name}:"
)
# Figure 9: merge.
MERGE = (
    "{solve_output}\n\nInstruction: You are requested to combine the five points that were previously discussed. "
    "For each point, provide a concise explanation to clarify its relevance. Also, include the respective score for "
    "each point to ensure a thorough understanding. Once you’ve done this, please draft a summary paragraph that "
    "encapsulates an overall evaluation based on these five points. Finally, present your conclusive judgement. "
    'Use the format "[[A]]" if you determine assistant A to be superior, "[[B]]" if you find assistant B to be '
    'better, and "[[C]]" in case of a tie.'
)
MAX_CRITERIA = 5
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)]|\(\d+\))\s*")


def parse_criteria(text: str) -> list[tuple[str, str]]:
    """(name, line) per criterion in the branch output, at most five; blank or heading lines skipped."""
    criteria = []
    for raw in text.splitlines():
        line = _NUMBERING.sub("", raw).strip().strip("*").strip()
        if not line or line.lower().rstrip(":") == "evaluation plan":
            continue
        name = re.split(r"\s*(?::|\s-\s|–)\s*", line, maxsplit=1)[0].strip("* ")
        criteria.append((name or line[:40], line))
        if len(criteria) == MAX_CRITERIA:
            break
    return criteria


def parse_scores(text: str) -> tuple[int, int] | None:
    """The two 1-5 scores (A, then B) a solve call gave, or None."""
    scores = [int(s) for s in re.findall(r"(?<![\d.])([1-5])(?:\s*/\s*5)?(?![\d.])", text)]
    return (scores[0], scores[1]) if len(scores) >= 2 else None


def parse_verdict(text: str) -> str | None:
    """"A", "B" or "C" from the last [[X]] in the text (also "[A]"), else None."""
    found = re.findall(r"\[\[\s*([ABC])\s*\]\]", text) or re.findall(r"\[\s*([ABC])\s*\]", text)
    return found[-1] if found else None


def solve_output(evaluations: list[tuple[str, str]]) -> str:
    """Figure 9's {solve_output}: each criterion's solve reply, numbered, under its name."""
    return "\n".join(f"{i}. {name}:\n{text.strip()}" for i, (name, text) in enumerate(evaluations, 1))


def bsm(
    task: Task,
    *,
    merge: str = "llm",
    prompt_format: PromptFormat = "chat",
    branch_tokens: int = 256,
    solve_tokens: int = 64,
    merge_tokens: int = 256,
    shots: int = 2,
):
    """Build the Branch-Solve-Merge judging program."""
    if merge not in ("llm", "average"):
        raise ValueError(f"bsm merge is 'llm' or 'average', got {merge!r}")
    shown = exemplars.BSM[:shots] if prompt_format == "fewshot" else ()
    branch_prefix = "".join(BRANCH.format(question=e["question"]) + "\n" + e["plan"] + "\n\n" for e in shown)
    solve_prefix = "".join(
        SOLVE.format(question=e["question"], response_a=e["response_a"], response_b=e["response_b"], criterion=line,
                     criterion_name=name) + "\n" + e["scores"][name] + "\n\n"
        for e in shown for name, line in parse_criteria(e["plan"])[:1]
    )
    merge_prefix = "".join(
        MERGE.format(solve_output=solve_output(list(e["scores"].items()))) + "\n" + e["verdict"] + "\n\n" for e in shown
    )
    newline = "\n" if shown else ""

    def program(example: Example, lm) -> Trace:
        calls: list[Call] = []
        fields = {k: example.inputs[k] for k in ("question", "response_a", "response_b")}
        plan = ask(lm, branch_prefix + BRANCH.format(question=fields["question"]) + newline, calls=calls, name="branch", prompt_format=prompt_format,
                   max_tokens=branch_tokens, stop=("\n\n",)).text
        criteria = parse_criteria(plan)
        if not criteria:
            return Trace(example.id, "bsm", None, calls, error=f"branch returned no criteria: {plan[:80]!r}")
        evaluations, totals = [], [0, 0]
        for name, line in criteria:
            solved = ask(lm, solve_prefix + SOLVE.format(**fields, criterion=line, criterion_name=name) + newline, calls=calls, name=f"solve:{name}",
                         prompt_format=prompt_format, max_tokens=solve_tokens, stop=("\n\n",)).text
            scores = parse_scores(solved)
            if scores:
                totals[0] += scores[0]
                totals[1] += scores[1]
            evaluations.append((name, solved))
        meta = {"criteria": [name for name, _ in criteria], "totals": totals}
        if merge == "average":
            verdict = "A" if totals[0] > totals[1] else "B" if totals[1] > totals[0] else "C"
            return Trace(example.id, "bsm", verdict, calls, meta=meta)
        judged = ask(lm, merge_prefix + MERGE.format(solve_output=solve_output(evaluations)) + newline, calls=calls,
                     name="merge", prompt_format=prompt_format, max_tokens=merge_tokens,
                     stop=("\n\n",) if shown else ("\n\n\n",)).text
        verdict = parse_verdict(judged)
        error = None if verdict else f"no [[A]]/[[B]]/[[C]] verdict in: {judged[-80:]!r}"
        # the merged judgement: what "Distill System 2" keeps
        return Trace(example.id, "bsm", verdict, calls, error=error, meta=meta, final_response=judged.strip())

    return program


class BSMConfig(MethodConfigBase):
    """Branch-Solve-Merge judging: one budget per call kind (branch, solve, merge), no single `max_tokens`."""

    name: Literal["bsm"] = "bsm"
    shots: int = Field(4, ge=0, le=64, description="worked exemplars in the fewshot format (two exist: one prefers "
                       "A, one B)")
    prompt_format: Literal["fewshot", "chat"] = Field(
        "fewshot", description="fewshot: raw prompts with exemplars (pretrained models); chat: the chat template")
    merge: Literal["llm", "average"] = Field("llm", description="llm: the model merges the evaluations (Figure 9); "
                                             "average: the higher total score wins, no call")
    branch_tokens: int = Field(256, ge=1, le=1_000_000, description="the evaluation plan's budget")
    solve_tokens: int = Field(64, ge=1, le=1_000_000, description="each criterion's scoring budget")
    merge_tokens: int = Field(256, ge=1, le=1_000_000, description="the merged judgement's budget")

    @model_validator(mode="before")
    @classmethod
    def _no_single_budget(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("max_tokens") is not None:
            raise ValueError("method 'bsm' has no max_tokens: its budgets are branch_tokens, solve_tokens and "
                             "merge_tokens")
        if isinstance(data, dict) and "max_tokens" in data:  # `max_tokens: null`, as earlier versions dumped it
            data = {key: value for key, value in data.items() if key != "max_tokens"}
        return data

    @property
    def max_tokens(self) -> None:
        return None

    @property
    def question_suffix(self) -> str:
        return ""


register(BSMConfig, bsm, "System 2: Branch-Solve-Merge pairwise judging: criteria, a score per criterion, a merged "
         "[[A]]/[[B]]/[[C]] verdict")
