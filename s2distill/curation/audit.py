"""The curation audit: whether the answers curation kept are right, measured against labels that
curation never read (issue 26).

Curation is label-free: agreement, confidence or a judge stands in for correctness. The audit
reads the labels afterwards and says how good a stand-in it was on this task:

- **precision**: of the kept inputs, the share whose kept answers are all right (an input with one
  wrong kept answer trains the student on a wrong target for it, so it counts as wrong);
- **output precision**: of the kept outputs, the share that are right, each kept output being a
  training example: the accuracy of the selected training data, our reading of TwT Table 5 (its caption says only "accuracy");
- **coverage**: the share of inputs kept (which needs no label, so it is over every input);
- **rescued**: kept inputs whose kept answers are right where the untrained student's System 1
  (greedy) is wrong: what distillation can teach it;
- **poisoned**: kept inputs with a wrong kept answer: what distillation teaches it wrongly;
- per teacher, the precision of that teacher's kept outputs.

Precision comes with its Wilson 95% interval, which stays honest for the few dozen inputs of a
hand-labelled sample. Right is the task's own `score(answer, target)` (exact match, an alias in
the answer, a program passing its asserts), at 0.5 or more: every task scores an answer 0 or 1.

Pure computation: the stage (s2distill/stages/audit.py) hands it the verdicts, the labels and
System 1's answers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from s2distill.types import Verdict

Score = Callable[[str | None, str], float]
EXAMPLES = 5  # rescued and poisoned inputs shown per variant


def wilson(right: int, n: int, *, z: float = 1.959963984540054) -> list[float] | None:
    """The Wilson score interval of a proportion `right / n` (95% by default: z the normal's 97.5% quantile,
    as statsmodels' `proportion_confint(method="wilson")`); None when n is 0."""
    if n <= 0:
        return None
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)]


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class Judge:
    """Right or wrong, by the task's score against the labels; each (input, answer) scored once
    (a program's asserts run once however many outputs repeat it)."""

    def __init__(self, targets: Mapping[str, str], score: Score):
        self.targets, self._score, self._seen = targets, score, {}

    def labelled(self, example_id: str) -> bool:
        return example_id in self.targets

    def right(self, example_id: str, answer: str | None) -> bool:
        if answer is None:
            return False
        key = (example_id, answer)
        if key not in self._seen:
            self._seen[key] = self._score(answer, self.targets[example_id]) >= 0.5
        return self._seen[key]

    def kept_answers(self, verdict: Verdict) -> list[str | None]:
        """The answers a kept input trains on: the verdict's own (USC's composed answer, the vote's
        winner) and each kept output's, distinct, in order."""
        answers = ([verdict.answer] if verdict.answer is not None else []) + [r.answer for r in verdict.kept_outputs]
        return list(dict.fromkeys(answers)) or [None]

    def verdict_right(self, verdict: Verdict) -> bool:
        """A kept input is right when every answer it trains on is."""
        return all(self.right(verdict.example_id, a) for a in self.kept_answers(verdict))


class Tally:
    """Counts of one decision over the inputs (a filter's verdicts, or one point of a curve)."""

    def __init__(self) -> None:
        self.inputs = self.kept = self.labelled = self.kept_labelled = self.right = 0
        self.outputs = self.outputs_right = 0

    def add(self, verdict: Verdict, judge: Judge) -> bool | None:
        """Count one input's verdict; returns whether its kept answers are right (None: dropped or unlabelled)."""
        self.inputs += 1
        self.kept += verdict.kept
        if not judge.labelled(verdict.example_id):
            return None
        self.labelled += 1
        if not verdict.kept:
            return None
        self.kept_labelled += 1
        right = judge.verdict_right(verdict)
        self.right += right
        for ref in verdict.kept_outputs:
            self.outputs += 1
            self.outputs_right += judge.right(verdict.example_id, ref.answer)
        return right

    def figures(self) -> dict:
        """Coverage over every input; precision over the labelled kept inputs, with its interval."""
        return {"inputs": self.inputs, "kept": self.kept, "coverage": share(self.kept, self.inputs),
                "labelled": self.labelled, "kept_labelled": self.kept_labelled, "right": self.right,
                "precision": share(self.right, self.kept_labelled),
                "precision_ci": wilson(self.right, self.kept_labelled),
                "outputs": self.outputs, "outputs_right": self.outputs_right,
                "output_precision": share(self.outputs_right, self.outputs),
                "output_precision_ci": wilson(self.outputs_right, self.outputs)}


def audit_verdicts(verdicts: Iterable[Verdict], judge: Judge, system1: Mapping[str, str | None], *,
                   question: Callable[[str], str] = lambda _id: "", examples: int = EXAMPLES) -> dict:
    """The audit of one variant's verdicts (read once, in order): its figures (`Tally.figures`),
    rescued and poisoned counts with the first `examples` of each, System 1's own accuracy on the
    labelled inputs, and per teacher the precision of its kept outputs and the inputs it has one on.
    Everything but `inputs`, `kept` and `coverage` is over the labelled inputs alone."""
    tally = Tally()
    rescued = poisoned = system1_right = 0
    shown: dict[str, list[dict]] = {"rescued": [], "poisoned": []}
    per_teacher: dict[str, Counter] = {}
    for verdict in verdicts:
        right = tally.add(verdict, judge)
        example_id = verdict.example_id
        if not judge.labelled(example_id):
            continue
        first = judge.right(example_id, system1.get(example_id))
        system1_right += first
        for ref in verdict.kept_outputs if verdict.kept else ():
            counts = per_teacher.setdefault(ref.teacher, Counter())
            counts["outputs"] += 1
            counts["right"] += judge.right(example_id, ref.answer)
        for teacher in {ref.teacher for ref in verdict.kept_outputs} if verdict.kept else ():
            per_teacher[teacher]["inputs"] += 1
        if right is None:
            continue
        kind = "poisoned" if not right else "rescued" if not first else None
        if kind is None:
            continue
        if kind == "rescued":
            rescued += 1
        else:
            poisoned += 1
        if len(shown[kind]) < examples:
            shown[kind].append({"id": example_id, "question": question(example_id),
                                "kept": judge.kept_answers(verdict), "label": judge.targets[example_id],
                                "system1": system1.get(example_id), "reason": verdict.reason})
    figures = tally.figures()
    return {
        **figures,
        "rescued": rescued, "poisoned": poisoned,
        "system1": {"right": system1_right, "n": figures["labelled"],
                    "accuracy": share(system1_right, figures["labelled"])},
        "per_teacher": {name: {"inputs": c["inputs"], "outputs": c["outputs"], "right": c["right"],
                               "precision": share(c["right"], c["outputs"]),
                               "precision_ci": wilson(c["right"], c["outputs"])}
                        for name, c in per_teacher.items()},
        "examples": shown,
    }
