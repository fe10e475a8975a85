"""A task from the user's own files: `task: {name: custom, path: ..., ...}`.

The seed paper's premise is unlabeled inputs as people have them. This task reads them from JSONL,
JSON (a list of objects), CSV, Parquet or a local Hugging Face `datasets` folder (`save_to_disk`;
nothing is fetched from a hub), maps fields to the question (one field, or a `str.format`
template over several), and says what an answer is:

- `exact`: a short phrase, compared after normalisation (the default);
- `number`: numeric exact match, as GSM8K (`$1,234.50` = `1234.5`);
- `choice`: multiple choice; `options` names the field holding the options (a list, a
  letter -> text mapping, or a JSON list in a string, as CSV has it); the answer is a letter;
- `free_text`: a whole response (the S2A case): the answer is the model's text;
- `module:function` / `file.py:function`: the user's parser, `(text) -> str | None`; an output it
  raises on or returns another type for is unparseable, its trace saying why (never a crash).

A `label` field is optional and only evaluation reads it: it is removed from every example's
inputs, so no prompt, sample or curation step can see it. Without labels the report's score is
agreement with System 2's answer (the pipeline fills in System 2's greedy answers as the
references; for `free_text`, a pairwise judge), and the task's metric name says so.

A bad row (not an object, a missing field, an empty question, a label of the wrong type or that is
not an option) is an error naming the file, the row and the field, or, with `on_bad_row: skip`, a
counted skip that the report lists. Nothing is dropped silently. Test inputs that repeat training
inputs (the same question, exactly or after whitespace and case) are counted in the report's notes.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import string
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from s2distill.config.base import Strict, split_field
from s2distill.errors import DataError
from s2distill.tasks.base import Shot, Task, normalize_number
from s2distill.tasks.user_files import FORMATS, held_out_split, read_rows
from s2distill.types import Example, Labeled

ANSWER_KINDS = ("exact", "number", "choice", "free_text")
LETTERS = string.ascii_uppercase
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


class Exemplar(Strict):
    """A solved example for few-shot prompts (optional: without any, prompts are zero-shot)."""

    question: str
    answer: str
    rationale: str = ""
    program: str = ""


class CustomConfig(Strict):
    name: Literal["custom"] = "custom"
    path: str = Field(description="a .jsonl/.json/.csv/.parquet file or a datasets folder (save_to_disk)")
    format: Literal[("auto", *FORMATS)] = Field("auto", description="default: from the file's suffix")
    split: str | None = split_field(None, description="datasets folder with several splits: the one holding the "
                                    "inputs (default: train, or the only split)")
    question: str | None = Field(None, description="the field holding the question")
    template: str | None = Field(None, description="or a template over several fields, e.g. '{title}\\n\\n{body}'")
    answer: str = Field("exact", description="exact | number | choice | free_text | module:function (a parser)")
    options: str | None = Field(None, description="choice: the field holding the options")
    label: str | None = Field(None, description="the field holding the reference answer; read by evaluation only")
    test_path: str | None = split_field(None, description="a separate file of test inputs (same fields)")
    test_size: int | None = split_field(None, ge=1, description="test inputs taken from `path` (default: test_fraction)")
    test_fraction: float = split_field(0.2, gt=0.0, lt=1.0, description="share of `path` held out for testing")
    train_size: int | None = split_field(None, ge=1, description="training inputs at most")
    seed: int = split_field(0, description="the shuffle that splits `path` into train and test")
    on_bad_row: Literal["error", "skip"] = Field("error", description="skip: count and report bad rows instead")
    exemplars: list[Exemplar] = Field(default_factory=list, description="solved examples for few-shot prompts")
    description: str = ""
    parser_sha256: str | None = Field(None, description="a module:function parser: the SHA-256 of its source "
                                      "file, recorded at load, so that editing the parser redoes what it parsed")

    @field_validator("path", "test_path")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().exists():
            raise ValueError(f"data path {value!r} does not exist")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CustomConfig:
        if (self.question is None) == (self.template is None):
            raise ValueError("give either question (a field) or template (over several fields), not both or neither")
        if self.answer not in ANSWER_KINDS and ":" not in self.answer:
            raise ValueError(f"answer {self.answer!r}: one of {', '.join(ANSWER_KINDS)}, or a module:function parser")
        if ":" in self.answer:
            from s2distill.user_code import load_user_function_and_digest

            _, self.parser_sha256 = load_user_function_and_digest(self.answer)
        if (self.answer == "choice") != (self.options is not None):
            raise ValueError("answer choice needs options (the field holding the options), and only choice takes it")
        if self.label is not None and self.label in self.question_fields():
            raise ValueError(f"the label field {self.label!r} cannot be part of the question")
        return self

    def question_fields(self) -> list[str]:
        """The fields the question is made of."""
        if self.question is not None:
            return [self.question]
        return [name for _, name, _, _ in string.Formatter().parse(self.template or "") if name]


def _load_parser(spec: str):
    from s2distill.user_code import load_user_function  # same `module:function` rules as user programs

    return load_user_function(spec)


class CustomTask(Task):
    """The user's data as a task: see the module docstring."""

    name = "custom"
    description = "your own data: JSONL, CSV, Parquet or a datasets folder (task: {name: custom, path: ...})"
    metric = "exact_match"

    config_class = CustomConfig

    def __init__(self, config: CustomConfig, *, data_root: Path | None = None):
        super().__init__(config, data_root=data_root)
        self.skipped: list[str] = []
        self._overlap = (0, 0)  # test inputs repeating a training input: exactly, after whitespace and case
        self.has_labels = config.label is not None
        self.answer_kind = config.answer if config.answer in ANSWER_KINDS else "parser"
        self._parser = _load_parser(config.answer) if self.answer_kind == "parser" else None
        self.multiline_answers = self.answer_kind == "free_text"  # a response spans lines
        self.twt_family = {"number": "math", "choice": "multiple_choice"}.get(self.answer_kind, "general")
        self.rar_spec = {"number": "Give the final answer as a number.\n",
                         "choice": "Answer with the letter of the correct option.\n"}.get(self.answer_kind, "")
        if not self.has_labels:
            self.metric = "win_rate_vs_system2" if self.answer_kind == "free_text" else "agreement_with_system2"
        elif self.answer_kind == "free_text":
            self.metric = "exact_match"
        self.shots = tuple(Shot(e.question, e.rationale, e.program, e.answer) for e in config.exemplars)

    @property
    def perturbable(self) -> bool:
        """Only multiple choice has an answer-preserving perturbation (shuffled options)."""
        return self.answer_kind == "choice"

    def fingerprint(self) -> str:
        """A digest of the data files, so a run folder is not reused after the data changed."""
        digest = hashlib.sha256()
        for root in [Path(p).expanduser() for p in (self.config.path, self.config.test_path) if p]:
            files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
            for file in files:
                digest.update(file.name.encode())
                digest.update(file.read_bytes())
        return digest.hexdigest()[:16]

    # -- reading ---------------------------------------------------------------------------------
    @cached_property
    def _splits(self) -> dict[str, list[Labeled]]:
        """Both splits, read and checked once."""
        cfg = self.config
        rows = self._examples(read_rows(Path(cfg.path).expanduser(), cfg.format, cfg.split), "row")
        if cfg.test_path is not None:
            test = self._examples(read_rows(Path(cfg.test_path).expanduser(), cfg.format, None), "test")
            train = rows
        elif (held := held_out_split(Path(cfg.path).expanduser(), cfg.format, cfg.split)) is not None:
            test, train = self._examples(held, "test"), rows
        else:
            order = list(range(len(rows)))
            random.Random(cfg.seed).shuffle(order)
            n_test = cfg.test_size or max(1, round(cfg.test_fraction * len(rows)))
            if n_test >= len(rows):
                raise DataError(f"{cfg.path}: {len(rows)} usable rows cannot give {n_test} test inputs and any training input")
            test_ids = set(order[:n_test])
            test = [item for i, item in enumerate(rows) if i in test_ids]
            train = [item for i, item in enumerate(rows) if i not in test_ids]
        splits = {"train": train[: cfg.train_size] if cfg.train_size else train, "test": test}
        self._overlap = self._repeated_inputs(splits["train"], splits["test"])
        return splits

    def _repeated_inputs(self, train: list[Labeled], test: list[Labeled]) -> tuple[int, int]:
        """(test inputs whose question is a training input's, exactly; more that are after collapsing
        whitespace and case)."""
        def loose(text: str) -> str:
            return " ".join(text.split()).casefold()

        exact = {self.question(item.example) for item in train}
        loosely = {loose(text) for text in exact}
        questions = [self.question(item.example) for item in test]
        same = sum(text in exact for text in questions)
        return same, sum(text not in exact and loose(text) in loosely for text in questions)

    def _examples(self, source: tuple[str, list[Any]], prefix: str) -> list[Labeled]:
        where, rows = source
        out = []
        for number, row in enumerate(rows, 1):
            try:
                out.append(self.labeled_row(row, example_id=f"{prefix}{number}", where=f"{where}: row {number}"))
            except DataError as exc:
                if self.config.on_bad_row == "error":
                    raise
                self.skipped.append(str(exc))
        return out

    def example_from_row(self, row: Any, *, example_id: str = "input", where: str = "input") -> Example:
        """An input row as an Example (label removed), checked as a training row is: for `predict`."""
        return self.labeled_row(row, example_id=example_id, where=where, need_label=False).example

    def labeled_row(self, row: Any, *, example_id: str, where: str, need_label: bool = True) -> Labeled:
        """One row checked and split into the example (the inputs, label removed) and its target."""
        cfg = self.config
        if not isinstance(row, dict):
            raise DataError(f"{where}: not an object (got {type(row).__name__}); each row must map field names to values")
        for field in [*cfg.question_fields(), *([cfg.options] if cfg.options else [])]:
            if field not in row or row[field] is None:
                raise DataError(f"{where}: field {field!r} is missing (fields: {', '.join(map(str, row)) or 'none'})")
        inputs = {k: v for k, v in json.loads(json.dumps(row, default=str)).items() if k != cfg.label}
        if cfg.options:
            inputs[cfg.options] = _options(row[cfg.options], where, cfg.options)
        example = Example(example_id, inputs)
        if not self.question(example).strip():
            raise DataError(f"{where}: field {'/'.join(cfg.question_fields())!r}: the question is empty")
        target = ""
        if cfg.label is not None and need_label:
            value = row.get(cfg.label)
            if value is None or str(value).strip() == "":
                raise DataError(f"{where}: field {cfg.label!r} (the label) is missing or empty")
            self._check_label_type(value, where)
            target = self._target(str(value).strip(), inputs, where)
        return Labeled(example, target)

    def _check_label_type(self, value: Any, where: str) -> None:
        """A label's type must suit the answer kind: a number (or numeric text) for `number`, text
        for `exact` and `free_text`, text or a number for `choice` (an option may be a number) and
        a parser's answers; never a list, an object or true/false."""
        kind, field = self.answer_kind, self.config.label
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise DataError(f"{where}: field {field!r} (the label) is {type(value).__name__} {shown}; "
                            f"answer {kind} needs {'a number' if kind == 'number' else 'text'}")
        if kind == "number" and not _is_number(value):
            raise DataError(f"{where}: field {field!r} (the label): {shown} is not a number (answer: number)")
        if kind in ("exact", "free_text") and not isinstance(value, str):
            raise DataError(f"{where}: field {field!r} (the label) is the number {shown}, but answer {kind} compares "
                            "text: set answer: number, or give the label as text")

    def _target(self, label: str, inputs: dict, where: str) -> str:
        if self.answer_kind != "choice":
            return label
        options = inputs[self.config.options]
        letters = [letter for letter, _ in options]
        if label.strip("() ").upper() in letters:
            return label.strip("() ").upper()
        for letter, text in options:
            if text.strip().lower() == label.lower():
                return letter
        raise DataError(f"{where}: field {self.config.label!r}: {label!r} is neither an option letter nor an option's text")

    def labeled(self, split: str) -> list[Labeled]:
        return self._splits["train" if split == "train" else "test"]

    def notes(self) -> list[str]:
        """What the report should say about the data: skipped rows, and what the score means."""
        test = self._splits["test"]  # read here too: a run that kept every stage has not read the data
        notes = []
        if self.skipped:
            shown = "; ".join(self.skipped[:5]) + (" …" if len(self.skipped) > 5 else "")
            notes.append(f"{len(self.skipped)} rows skipped (on_bad_row: skip): {shown}")
        if not self.has_labels:
            notes.append("The data has no labels: the score is agreement with System 2's greedy answer on each test "
                         "input" + (" (win rate in a pairwise judgement, both orders, ties counting half)"
                                    if self.answer_kind == "free_text" else "") + ", not accuracy.")
        same, loosely = self._overlap
        if same or loosely:
            notes.append(f"{same + loosely} of {len(test)} test inputs repeat a training input ("
                         f"{same} exactly, {loosely} after ignoring whitespace and case): their scores measure recall "
                         "of training inputs as well as the method.")
        return notes

    # -- the question and its answer -------------------------------------------------------------
    def question(self, example: Example) -> str:
        cfg, inputs = self.config, example.inputs
        if cfg.question is not None:
            text = str(inputs[cfg.question]).strip()
        else:
            text = cfg.template.format_map({k: "" if v is None else v for k, v in inputs.items()}).strip()
        if cfg.options:
            text += "\nAnswer Choices: " + " ".join(f"({letter}) {option}" for letter, option in inputs[cfg.options])
        return text

    def normalize(self, answer: str) -> str:
        if self.answer_kind == "number":
            return normalize_number(answer)
        if self.answer_kind == "choice":
            return answer.strip().strip("().[]* ").upper()
        return super().normalize(answer)

    def parse_answer(self, text: str) -> str | None:
        kind = self.answer_kind
        if kind == "parser":
            return self._user_parse(text)
        if kind == "free_text":  # the whole response, or what follows a closing "Final answer:" (zero-shot CoT)
            marked = re.search(r"^\s*final answer:\s*([\s\S]*)", text, re.IGNORECASE | re.MULTILINE)
            return (marked.group(1) if marked else text).strip() or None
        if kind == "number":
            marked = re.search(r"(?:answer is|final answer:)\s*:?\s*(.*)", text, re.IGNORECASE)
            numbers = _NUMBER.findall(marked.group(1) if marked else text)
            if not numbers:
                return None
            return self.normalize((numbers[0] if marked else numbers[-1]).replace("$", ""))
        if kind == "choice":
            marked = re.search(r"(?:answer is|final answer:|answer:)\s*\(?([A-Z])\b", text, re.IGNORECASE)
            if marked:
                return marked.group(1).upper()
            lone = re.search(r"^\s*\(?([A-Z])(?:\)|\.|:|\s*$)", text)
            return lone.group(1) if lone else None
        return super().parse_answer(text)

    def _user_parse(self, text: str) -> str | None:
        """The user's parser on one output. An output it raises on, or returns anything but a
        string or None for, is unparseable; the reason goes on the output's trace (`note_failure`),
        and the run goes on."""
        from s2distill.user_code import describe_exception, note_failure

        where = f"answer parser {self.config.answer!r}"
        try:
            parsed = self._parser(text)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code: this output is unparseable
            note_failure(f"{where} raised {describe_exception(exc)}")
            return None
        if parsed is None:
            return None
        if not isinstance(parsed, str):
            shown = repr(parsed) if len(repr(parsed)) <= 40 else repr(parsed)[:37] + "..."
            note_failure(f"{where} returned {type(parsed).__name__} {shown}; it must return a string or None")
            return None
        return parsed if parsed.strip() else None

    def score(self, answer: str | None, target: str) -> float:
        if not target:
            return 0.0  # no reference (System 2 gave no answer on this input): not an agreement
        return super().score(answer, target)

    # -- the perturbation filter: options shuffled for multiple choice ---------------------------
    def perturb(self, example: Example) -> Example | None:
        if self.answer_kind != "choice":
            return None
        options = example.inputs[self.config.options]
        order = _shuffle(example.id, len(options))
        shuffled = [[LETTERS[i], options[j][1]] for i, j in enumerate(order)]
        return Example(example.id, {**example.inputs, self.config.options: shuffled})

    def map_back(self, example_id: str, answer: str | None) -> str | None:
        if self.answer_kind != "choice":
            return answer
        if answer is None or len(self.normalize(answer)) != 1:
            return None
        n = self._option_counts[example_id]
        index = LETTERS.find(self.normalize(answer))
        return LETTERS[_shuffle(example_id, n)[index]] if 0 <= index < n else None

    @cached_property
    def _option_counts(self) -> dict[str, int]:
        """Options per input id, every split: map_back runs once per sample, so a lookup, not a scan."""
        return {item.example.id: len(item.example.inputs[self.config.options])
                for split in self._splits.values() for item in split}


def _is_number(value: str | int | float) -> bool:
    """A finite number, or text that reads as one ('$1,234.50', '-3', '0.5')."""
    if isinstance(value, int | float):
        return math.isfinite(value)
    text = value.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _shuffle(example_id: str, n: int) -> list[int]:
    """A perturbed copy's option order, fixed by the input's id: new position i shows option order[i]."""
    order = list(range(n))
    random.Random(example_id).shuffle(order)
    return order


def _options(value: Any, where: str, field: str) -> list[list[str]]:
    """Options as [letter, text] pairs, from a list, a {letter: text} mapping or a JSON list string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"{where}: field {field!r}: options must be a list (or a JSON list in a string), "
                            f"got {value[:60]!r}") from None
    if isinstance(value, dict):
        pairs = [[str(k).strip().upper(), str(v)] for k, v in value.items()]
    elif isinstance(value, list | tuple):
        pairs = [[LETTERS[i], str(v)] for i, v in enumerate(value[: len(LETTERS)])]
    else:
        raise DataError(f"{where}: field {field!r}: options must be a list or a mapping, got {type(value).__name__}")
    if len(pairs) < 2:
        raise DataError(f"{where}: field {field!r}: a choice needs at least two options, got {len(pairs)}")
    return pairs
