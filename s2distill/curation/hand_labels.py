"""A hand-labelled sample of the training inputs, for the curation audit of data without labels.

`curation.audit_labels: FILE` names a JSONL file, one labelled input a line: the input by its id
(`{"id": "train-17", "label": "nm"}`) or by its fields (`{"inputs": {"words": ["Ron", "Shyam"]},
"label": "nm"}`), exactly as the run's `inputs/train.jsonl` holds them, so the simplest way to make
one is to pick rows of that file at random (`shuf -n 50 runs/x/inputs/train.jsonl`) and add a
`label` to each. A label is what the task's score compares an answer with (for multiple choice,
the option's letter). The audit then gives its figures on these inputs alone, with a confidence
interval for their size (s2distill/curation/audit.py).

Every problem is an error naming the line, raised before the run does any work: a missing file, a
line that is not a JSON object, no label, neither an id nor inputs, an input that is not a training
input, an input labelled twice, an empty file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from s2distill.errors import DataError
from s2distill.types import Example


@dataclass(frozen=True)
class AuditLabels:
    """The targets the audit scores against, by input id, and where they come from: the task's
    train labels (`source` "task") or a hand-labelled file (`source` "hand", `file`)."""

    targets: dict[str, str]
    source: str
    file: str | None = None

    @property
    def digest(self) -> str:
        """The labels' content: editing one redoes the audit and nothing else."""
        text = json.dumps(sorted(self.targets.items()), ensure_ascii=False)
        return hashlib.sha256(f"{self.source}\n{text}".encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"source": self.source, "file": self.file, "n": len(self.targets)}


def _key(inputs: dict) -> str:
    return json.dumps(inputs, sort_keys=True, ensure_ascii=False)


def read_hand_labels(path: str | Path, examples: Sequence[Example], score=None) -> AuditLabels:
    """The file's labels by training input id (see the module docstring for the format). `score`: the
    task's `score(answer, target)`, tried on each label at once, so a label the task cannot read (a
    plain answer where TriviaQA reads a JSON list of aliases) is refused here, not after training."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"curation.audit_labels: {path} does not exist (a JSONL file of "
                        '{"id": ..., "label": ...} rows, ids as in the run\'s inputs/train.jsonl)')
    ids = {e.id for e in examples}
    by_inputs = {_key(e.inputs): e.id for e in examples}
    targets: dict[str, str] = {}
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"curation.audit_labels {path}: line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: not an object; a row is {{\"id\": ..., \"label\": ...}}")
        label = row.get("label")
        if label is None or isinstance(label, bool | dict | list) or not str(label).strip():
            raise DataError(f"{where}: no label (a non-empty \"label\" string or number)")
        if "id" in row:
            example_id = str(row["id"])
            if example_id not in ids:
                shown = ", ".join(sorted(ids)[:3])
                raise DataError(f"{where}: no training input has id {example_id!r} (ids are as in the run's "
                                f"inputs/train.jsonl, e.g. {shown})")
        elif isinstance(row.get("inputs"), dict):
            example_id = by_inputs.get(_key(row["inputs"]))
            if example_id is None:
                raise DataError(f"{where}: these inputs are not a training input of this run: {row['inputs']}")
        else:
            raise DataError(f"{where}: names no input; give \"id\" or \"inputs\" as in the run's inputs/train.jsonl")
        if example_id in targets:
            raise DataError(f"{where}: input {example_id!r} is labelled twice")
        targets[example_id] = str(label).strip()
        if score is not None:
            try:
                score(targets[example_id], targets[example_id])
            except Exception as exc:  # noqa: BLE001 - any task's reading of its target
                raise DataError(f"{where}: the task cannot read label {targets[example_id]!r} as its target "
                                f"({type(exc).__name__}: {exc}); write it as the task's own train labels are "
                                "written (e.g. TriviaQA: a JSON list of aliases)") from None
    if not targets:
        raise DataError(f"curation.audit_labels {path}: no labelled input in the file")
    return AuditLabels(targets, "hand", str(path))
