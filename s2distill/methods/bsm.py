"""Branch-Solve-Merge for pairwise judging (Saha et al. 2023, arXiv 2310.15123).

branch: the model proposes an evaluation plan for the question: up to five criteria, one a line.
solve:  one call per criterion scores both responses 1-5 (Assistant A on the first line, B on the
        second), judging that criterion alone.
merge:  "llm" (default): a judge call sees both responses and the per-criterion evaluations and
        ends in [[A]], [[B]] or [[C]] (tie); "average": no call, the higher total score wins.

So BSM makes 1 + k + 1 calls (1 + k with the averaging merge), k being the number of criteria the
branch returned. Inputs: `example.inputs` holds "question", "response_a" and "response_b"; the
answer is "A", "B" or "C", or None with the reason when the verdict cannot be parsed.

Prompts: branch and solve are the paper's turn-1 prompts (its Figures 4 and 5, typo included).
The merge prompt's exact text is not in the sources available offline; the paper builds it on the
MT-bench pairwise judge, so merge is MT-bench's "pair-v2" judge prompt followed by the criterion
evaluations. In the `fewshot` format, up to `shots` worked exemplars (`exemplars.BSM`) precede
each call, showing a plan, a two-line score and a verdict.
"""

from __future__ import annotations

import re

from s2distill.methods import exemplars
from s2distill.methods.calls import PromptFormat, ask
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

BRANCH = (
    "We want to evaluate the quality of the responses provided by two AI assistants to the user question "
    "displayed below. Your task is to propose an evaluation plan that can be executed to compare the two "
    "responses. The evaluation plan should consist of a list of up to five factors that one should consider "
    "such as helpfulness, relevance, accuracy, etc. In each line, write an evaluation criterion along with a "
    "short descrition of how we should evaluate that criterion.\n\nUser Question: {question}\n\nEvaluation Plan:"
)
SOLVE = (
    "You are given a user question and responses provided by two AI assistants. Your task is to evaluate and "
    "score the quality of the responses based on a single evaluation criterion displayed below. Make sure to "
    "evaluate only based on the criterion specified and none other. In the first line, provide a score between "
    "1 to 5 for Assistant A's response. In the second line, provide a score between 1 to 5 for Assistant B's "
    "response.\n\n[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{response_a}\n"
    "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{response_b}\n"
    "[The End of Assistant B's Answer]\n\n[Evaluation Criterion]\n{criterion}\n[End of Evaluation Criterion]\n\n"
    "Evaluation of {criterion_name}:"
)
MERGE = (  # MT-bench "pair-v2" judge, then the branch/solve evaluations
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
    "to the user question displayed below. You should choose the assistant that follows the user's instructions "
    "and answers the user's question better. Your evaluation should consider factors such as the helpfulness, "
    "relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by "
    "comparing the two responses and provide a short explanation. Avoid any position biases and ensure that the "
    "order in which the responses were presented does not influence your decision. Do not allow the length of "
    "the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective "
    "as possible. After providing your explanation, output your final verdict by strictly following this format: "
    '"[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.\n\n'
    "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{response_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{response_b}\n[The End of Assistant B's Answer]\n\n"
    "[Evaluations of the two answers on each criterion]\n{evaluations}\n[End of Evaluations]"
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


def bsm(
    task: Task,
    *,
    merge: str = "llm",
    prompt_format: PromptFormat = "chat",
    branch_tokens: int = 256,
    solve_tokens: int = 64,
    merge_tokens: int = 256,
    shots: int = 1,
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
        MERGE.format(question=e["question"], response_a=e["response_a"], response_b=e["response_b"],
                     evaluations="\n".join(f"{name}: {score}" for name, score in e["scores"].items())) + "\n" + e["verdict"] + "\n\n"
        for e in shown
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
            evaluations.append(f"{name}: {solved.strip()}")
        meta = {"criteria": [name for name, _ in criteria], "totals": totals}
        if merge == "average":
            verdict = "A" if totals[0] > totals[1] else "B" if totals[1] > totals[0] else "C"
            return Trace(example.id, "bsm", verdict, calls, meta=meta)
        judged = ask(lm, merge_prefix + MERGE.format(**fields, evaluations="\n".join(evaluations)) + newline, calls=calls,
                     name="merge", prompt_format=prompt_format, max_tokens=merge_tokens,
                     stop=("\n\n",) if shown else ("\n\n\n",)).text
        verdict = parse_verdict(judged)
        error = None if verdict else f"no [[A]]/[[B]]/[[C]] verdict in: {judged[-80:]!r}"
        meta["final_response"] = judged.strip()  # the merged judgement: what "Distill System 2" keeps
        return Trace(example.id, "bsm", verdict, calls, error=error, meta=meta)

    return program
