"""The training targets of two controls a distilled student must beat: gold labels and random targets.

Both train on the inputs the recipe's own curation kept (the `distilled` variant's verdicts), one
pair per kept input, answer only (label only where the recipe ends on `label_only`, as BSM does), so
that each differs from the last stage of a one-stage, one-pair-per-input `distilled` in its targets
alone. Against a curriculum (TwT), reasoning targets or several pairs per input they differ in those
too: they are controls for the answers, not for the format. `gold` also keeps an input whose kept
outputs were all cut at their budget (its label needs none), which `distilled` drops.

- `gold_pairs` (the ceiling): each kept input's train label as its target. The kept inputs and not
  every input, so that the comparison with `distilled` is about whether each target is right, not
  about which or how many inputs were trained on (curation tends to keep the easier inputs; a gold
  set over all inputs would mix that in). Answer only, whatever the recipe's stages: a label has no
  rationale. The labels are read here alone, by this control's set stage after curation
  (stages/controls.py), never by sampling or curation (DESIGN principle 6).
- `random_target_pairs` (the floor): each kept input's target replaced by another kept input's
  distilled answer-only target, under a seeded permutation (`derangement`): the same number of pairs,
  the same multiset of targets, none paired with its own input where that is possible. Targets of
  the right kind (format, length, how often each answer occurs) teach everything but the link from
  an input to its answer; uniformly random strings would also teach a wrong output format, and the
  control would then measure that damage instead of what the input-answer link is worth.

The third control, `self_samples` (SSD), needs no target of its own: it is an ordinary variant over
the student's own System 1 samples with no filter (distill/variants.py).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence

from s2distill.distill.pairs import fold_blank_lines, input_pairs, pair_text, student_completion, student_prompt
from s2distill.methods import direct_completion
from s2distill.tasks import Task
from s2distill.types import Example, Labeled, Trace, Verdict

GOLD = "gold"
RANDOM_TARGETS = "random_targets"
CONTROL_TARGETS = (GOLD, RANDOM_TARGETS)  # the controls whose targets are built here


def labels_digest(labeled: Iterable[Labeled]) -> str:
    """SHA-256 of a split's (id, label) pairs: what `gold`'s set records, so that editing a label
    redoes gold's set and training and nothing else."""
    digest = hashlib.sha256()
    for item in labeled:
        digest.update(json.dumps([item.example.id, item.target]).encode() + b"\n")
    return digest.hexdigest()


def gold_pairs(task: Task, examples: Sequence[Example], verdicts: Iterable[Verdict], labels: Mapping[str, str], *,
               shots: int, question_suffix: str = "", prompt_format: str = "fewshot") -> Iterator[dict]:
    """One pair per kept input, in the verdicts' order: the student's System 1 prompt, and the
    input's train label as the answer-only target (`teacher` "label": no model wrote it)."""
    by_id = {e.id: e for e in examples}
    for verdict in verdicts:
        if not verdict.kept:
            continue
        example = by_id[verdict.example_id]
        answer = task.gold_answer(example, labels[example.id])  # e.g. TriviaQA's correct answer, not its aliases
        target = direct_completion(fold_blank_lines(task.target(answer)))  # [[A]] under Figure 13
        yield {"id": example.id, "teacher": "label", "sample": -1,
               "prompt": student_prompt(task, example, shots=shots, question_suffix=question_suffix,
                                        prompt_format=prompt_format),
               "completion": student_completion(target, prompt_format)}


def random_target_pairs(task: Task, examples: Sequence[Example],
                        verdicts_with_kept: Iterable[tuple[Verdict, Sequence[Trace]]], *, seed: int, shots: int,
                        fmt: str = "answer_only",
                        question_suffix: str = "", prompt_format: str = "fewshot") -> list[dict]:
    """The distilled pair of each kept input in format `fmt` (answer_only, or label_only where the
    recipe ends on it; its first, as `input_pairs` builds it), with the targets permuted among the
    inputs by `derangement` over their answers (normalised), so that no input keeps its own answer
    however its target is worded. Each pair keeps its prompt and says
    where its target came from: `from` (the input whose target it is), `teacher` and `sample`. An
    input kept with no usable output (every kept one cut at its budget) has no pair, as in `distilled`."""
    by_id = {e.id: e for e in examples}
    own, answers = [], []
    for verdict, kept in verdicts_with_kept:
        if verdict.kept:
            pairs = input_pairs(fmt, task, by_id[verdict.example_id], verdict, kept, shots=shots,
                                question_suffix=question_suffix, prompt_format=prompt_format)
            own += pairs[:1]
            # told apart by answer, not text: two merged judgements worded differently may say the same
            answers += [task.normalize(verdict.answer) if verdict.answer is not None else pair_text(p["completion"])
                        for p in pairs[:1]]
    order = derangement(answers, seed=seed)
    return [{**pair, "teacher": own[j]["teacher"], "sample": own[j]["sample"], "from": own[j]["id"],
             "completion": own[j]["completion"]} for pair, j in zip(own, order)]


def derangement(values: Sequence[str], *, seed: int) -> list[int]:
    """A seeded permutation `order` of positions: position i takes `values[order[i]]`. It moves every
    position (order[i] != i, given two positions or more) and gives as few positions as possible a
    value equal to their own: none, unless one value fills more than half the positions, and then
    the fewest possible (2m - n for m of n equal values).

    How: positions shuffled (seeded), then grouped by value, the largest group first; each position
    in that order takes the value m places on (cyclically), m the largest group's size. A group is
    never longer than m, so a shift of m leaves every group unless the largest fills more than half.
    """
    n = len(values)
    if n < 2:
        return list(range(n))
    rng = random.Random(seed)
    positions = list(range(n))
    rng.shuffle(positions)
    groups: dict[str, list[int]] = defaultdict(list)
    for i in positions:
        groups[values[i]].append(i)
    ranked = sorted(groups.values(), key=len, reverse=True)  # stable: equal sizes stay in their shuffled order
    line = [i for group in ranked for i in group]
    shift = len(ranked[0]) if len(ranked[0]) < n else 1  # one value everywhere: still move every position
    order = [0] * n
    for k, i in enumerate(line):
        order[i] = line[(k + shift) % n]
    return order
