"""Pairwise judging of assistant responses (Branch-Solve-Merge's task), on the OASST sample.

Pairs are first-turn English replies to the same prompt with human ranks: for ranks i < j the
rank-i reply is preferred. Trees are split, not pairs: the first `test_trees` trees give the test
pairs, each judged in both orders (response A/B swapped), the rest the unlabeled training pool
(one order; the perturbation filter judges the swapped copy itself). Reported: agreement with the
human preference over both orders, and the share of pairs whose two verdicts are
position-inconsistent (they do not name the same response).

`source: mt_bench` tests out of domain instead: MT-bench's 80 first-turn questions, each with two
answers from `answers` (a file `s2distill mt-bench-answers` writes), judged in both orders.
MT-bench's human judgments are not available offline, so there the score is position consistency
alone (the share of pairs whose two verdicts agree), not agreement with people.

The prompt System 1 and the distilled student are asked (`prompt`): `pair`, ours (the two responses
and "Reply A, B, or C for a tie."), or `figure13`, the input of Yu et al. 2024's BSM training data
(Figure 13, top), verbatim: MT-bench's pairwise judge prompt shortened to its verdict format, whose
answer is "[[A]]", "[[B]]" or "[[C]]"; the student's target is then that bracketed verdict (Figure 13,
bottom prints "Conclusive judgement: [[A]]", but the distilled judge generates 4 tokens in the BSM
results table, which is "[[A]]" alone: our reading). The data's MT-bench judge prompt
(`mt_bench/judge_prompts.jsonl`, pair-v2) is the longer original, which asks for an explanation first.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from s2distill.config.base import Strict, added_field, split_field
from s2distill.tasks.base import MAX_EXAMPLES, Shot, Task
from s2distill.tasks.data import read_jsonl
from s2distill.types import Example, Labeled

PAIR = "[User Question]\n{question}\n\n[Assistant A]\n{response_a}\n\n[Assistant B]\n{response_b}\n\nWhich assistant answered better? Reply A, B, or C for a tie."
# Yu et al. 2024, Figure 13 (top): the distilled judge's input, verbatim from the cleaner copy (straight
# apostrophes as it prints them), laid out as MT-bench's pair-v2 template lays out the same slots.
FIGURE13 = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the "
    "user question displayed below. Output your final verdict by strictly following this format: \"[[A]]\" if "
    "assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.\n\n"
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{response_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{response_b}\n[The End of Assistant B's Answer]"
)
PROMPTS = {"pair": PAIR, "figure13": FIGURE13}
_SHOTS = (
    ("How many legs does a spider have?", "A spider has eight legs.", "Spiders have six legs, like all insects.", "A"),
    ("Give me a synonym for 'happy'.", "Sad.", "'Joyful' is a common synonym for 'happy'.", "B"),
)


SWAP_JUDGED_PAIR = {"A": "B", "B": "A", "C": "C"}


def map_back_swapped_verdict(answer: str | None) -> str | None:
    """The verdict on the swapped pair, expressed for the original order ([[A]] ↔ [[B]]), in the
    case it came in (answers may arrive normalised to lower case)."""
    if answer is None or answer.upper() not in SWAP_JUDGED_PAIR:
        return None
    swapped = SWAP_JUDGED_PAIR[answer.upper()]
    return swapped if answer.isupper() else swapped.lower()


class JudgingConfig(Strict):
    name: Literal["judging"] = "judging"
    train_size: int = split_field(256, ge=1, le=MAX_EXAMPLES)
    test_trees: int = split_field(20, ge=1, le=99, description="trees whose pairs form the test split")
    test_size: int | None = split_field(None, ge=1, le=MAX_EXAMPLES,
                                        description="test pairs at most (each judged in both orders)")
    max_chars: int = Field(1500, ge=100, description="responses longer than this are cut (the model's context is small)")
    source: Literal["oasst", "mt_bench"] = split_field("oasst", description="the test pairs: OASST's ranked replies, "
                                                       "or MT-bench questions with two model answers each (no human "
                                                       "labels); the training pairs are OASST's either way")
    answers: str | None = split_field(None, description="mt_bench: the JSONL of answer pairs (s2distill mt-bench-answers)")
    prompt: Literal["pair", "figure13"] = added_field(
        "pair", description="the judge prompt System 1 and the student are asked: pair (ours: 'Reply A, B, or C') or "
        "figure13 (Yu et al. 2024 Figure 13's MT-bench judge prompt; the student's target is then [[A]], [[B]] or [[C]])")

    @model_validator(mode="after")
    def _answers_for_mt_bench(self) -> JudgingConfig:
        if self.source == "mt_bench" and not (self.answers and Path(self.answers).expanduser().exists()):
            raise ValueError("source mt_bench needs answers: a JSONL file of answer pairs; write one with "
                             "`s2distill mt-bench-answers FILE`")
        return self


class Judging(Task):
    description = "which of two assistant replies is better (OASST human ranks)"
    name = "judging"
    metric = "agreement"

    @cached_property
    def shots(self) -> tuple[Shot, ...]:  # type: ignore[override]
        """Two exemplars (one prefers A, one B) in the task's prompt, their verdicts as its targets."""
        return tuple(Shot(PROMPTS[self.config.prompt].format(question=q, response_a=a, response_b=b), "", "",
                          self.target(v)) for q, a, b, v in _SHOTS)
    twt_family = "multiple_choice"
    answer_kind = "choice"

    config_class = JudgingConfig
    input_fields = {"question": "text", "response_a": "text", "response_b": "text"}

    def __init__(self, config: JudgingConfig | None = None, *, data_root: Path | None = None):
        super().__init__(config, data_root=data_root)
        if self.config.source == "mt_bench":
            self.metric = "position_consistency"  # no human labels: consistency is what can be measured

    @cached_property
    def _pairs_by_tree(self) -> list[list[tuple[str, str, str]]]:
        """Per tree: (question, preferred reply, other reply) for every pair of ranked English replies."""
        out = []
        for tree in read_jsonl("oasst_sample/en_100_tree.jsonl", self.data_root):
            prompt = tree["prompt"]
            replies = sorted((r for r in prompt.get("replies", []) if r.get("rank") is not None and r.get("lang", "en") == "en"),
                             key=lambda r: r["rank"])
            out.append([(prompt["text"], better["text"], worse["text"]) for better, worse in combinations(replies, 2)])
        return out

    def _cut(self, text: str) -> str:
        return text if len(text) <= self.config.max_chars else text[: self.config.max_chars].rstrip() + " …"

    def _example(self, example_id: str, question: str, a: str, b: str, pair: str, order: str) -> Example:
        return Example(example_id, {"question": question, "response_a": self._cut(a), "response_b": self._cut(b),
                                    "pair": pair, "order": order})

    def labeled(self, split: str) -> list[Labeled]:
        n = self.config.test_trees
        if split == "train":
            pairs = [(f"t{t + n}-p{p}", *pair) for t, tree in enumerate(self._pairs_by_tree[n:]) for p, pair in enumerate(tree)]
            # Alternate which side the preferred reply is on, so the pool has no position pattern.
            return [Labeled(self._example(f"train-{pid}", q, *((good, bad) if i % 2 == 0 else (bad, good)), pid, "ab"),
                            "A" if i % 2 == 0 else "B")
                    for i, (pid, q, good, bad) in enumerate(pairs[: self.config.train_size])]
        if self.config.source == "mt_bench":
            return self._mt_bench_pairs()
        pairs = [(f"t{t}-p{p}", *pair) for t, tree in enumerate(self._pairs_by_tree[:n]) for p, pair in enumerate(tree)]
        out = []
        for pid, q, good, bad in pairs[: self.config.test_size]:
            out.append(Labeled(self._example(f"test-{pid}-ab", q, good, bad, pid, "ab"), "A"))
            out.append(Labeled(self._example(f"test-{pid}-ba", q, bad, good, pid, "ba"), "B"))
        return out

    def _mt_bench_pairs(self) -> list[Labeled]:
        """Each MT-bench question's two answers in both orders; the target is unknown (empty)."""
        rows = [json.loads(line) for line in Path(self.config.answers).expanduser().read_text().splitlines() if line.strip()]
        out = []
        for row in rows[: self.config.test_size]:
            pid = f"mt{row['question_id']}"
            a, b = row["answer_a"], row["answer_b"]
            out.append(Labeled(self._example(f"test-{pid}-ab", row["question"], a, b, pid, "ab"), ""))
            out.append(Labeled(self._example(f"test-{pid}-ba", row["question"], b, a, pid, "ba"), ""))
        return out

    def fingerprint(self) -> str | None:
        """MT-bench's answer pairs are the user's own file (`answers`): its content, so that changed
        answers are evaluated again; None for OASST (a checked data file)."""
        if self.config.source != "mt_bench":
            return None
        return hashlib.sha256(Path(self.config.answers).expanduser().read_bytes()).hexdigest()[:16]

    def headline(self, records: list[dict], examples: dict[str, Example]) -> float | None:
        """On MT-bench (no human labels) the score is the share of position-consistent pairs."""
        if self.config.source != "mt_bench":
            return None
        return 1.0 - self.metrics(records, examples)["position_inconsistent"]

    def question(self, example: Example) -> str:
        return PROMPTS[self.config.prompt].format(**{k: example.inputs[k] for k in ("question", "response_a", "response_b")})

    def target(self, answer: str) -> str:
        """The verdict as Figure 13's prompt asks for it ("[[A]]"), or the letter under ours."""
        return f"[[{answer}]]" if self.config.prompt == "figure13" else answer

    def normalize(self, answer: str) -> str:
        return answer.strip().strip("[]().* ").upper()

    def parse_answer(self, text: str) -> str | None:
        """'[[A]]' (the MT-bench judge format) anywhere, else a lone A/B/C ('B', 'Assistant B', 'The answer is B')."""
        bracketed = re.findall(r"\[\[([ABC])\]\]", text)
        if bracketed:
            return bracketed[-1]
        lone = re.search(r"^\s*(?:Assistant\s+|The answer is\s+)?\(?([ABC])(?=\)|\.|,|:|\s*$|\s+is\b)", text, re.IGNORECASE)
        return lone.group(1).upper() if lone else None

    def perturb(self, example: Example) -> Example:
        inputs = example.inputs
        return Example(example.id, {**inputs, "response_a": inputs["response_b"], "response_b": inputs["response_a"]})

    def map_back(self, example_id: str, answer: str | None) -> str | None:
        return map_back_swapped_verdict(answer)

    def metrics(self, records: list[dict], examples: dict[str, Example]) -> dict[str, float]:
        """Position inconsistency: pairs whose two verdicts, mapped to the same order, differ."""
        by_pair: dict[str, dict[str, str | None]] = {}
        for record in records:
            inputs = examples[record["id"]].inputs
            by_pair.setdefault(inputs["pair"], {})[inputs["order"]] = record["answer"]
        both = [v for v in by_pair.values() if len(v) == 2]
        inconsistent = [v for v in both if v["ab"] is None or map_back_swapped_verdict(v["ba"]) != v["ab"]]
        return {"position_inconsistent": len(inconsistent) / len(both) if both else 0.0, "pairs": float(len(both))}
