"""A row of the report: one system evaluated on one test split, as every reader of the report sees it.

Evaluation builds `Row`s (stages/evaluate.py: an evaluation's eval/NAME.json result with the labels
of the system it evaluated); the markdown and HTML reports, the plot, an exported model's card and
the Python API (`s2distill.api.Report`) read their attributes. report.json stores them as plain
dicts (`Row.to_dict`), with the keys report.json rows have always had, so report.html's script and
any script reading report.json are unchanged; `Row.from_dict` reads a row of any version's
report.json (a field missing from an older row takes its default; a key this version does not know
is kept in `extra` and written back as it was).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Row:
    """One evaluated system on one test split (or a distilled stage that could not be trained)."""

    # -- what was evaluated, and its score
    system: str  # "system1", "system2", or a variant's name ("distilled", a baseline such as "standard_kd")
    method: str  # the method's name (a distilled student: the student's method, e.g. "direct")
    task: str = ""  # the task's name
    metric: str = "score"  # what `score` measures (e.g. "exact_match", "agreement_with_system2")
    score: float | None = None  # in [0, 1]; None: not evaluated (`note` says why)
    n: int = 0  # test examples scored
    tokens_per_example: float | None = None  # generated tokens per test example, every call summed
    unparseable: int = 0  # examples without a parseable answer
    metrics: dict[str, float] = field(default_factory=dict)  # the task's own columns (e.g. biased / unbiased accuracy)
    # answers cut at their budget (a call stopped at max_tokens); maj@k: of its n × k samples. 0 in
    # rows evaluated before it was counted.
    truncated: int = 0
    # -- the evaluation's cost (None in rows evaluated before it was recorded, and in untrained rows)
    prompt_tokens_per_example: float | None = None
    seconds: float | None = None  # the evaluation's wall time when it ran
    seconds_per_example: float | None = None
    examples_per_second: float | None = None
    # -- which system this is (labels set by the evaluation, never part of its stored result)
    teacher: str | None = None  # System 2: the teacher's name
    stage: str | None = None  # a distilled student: its curriculum stage ("1/2 answer_only")
    model: str | None = None  # the model as described in the report (a student's: with its weights)
    shots: int | None = None  # the few-shot exemplars its prompt holds
    train_pairs: int | None = None  # a distilled student: the training pairs of its stage
    train_seconds: float | None = None  # a distilled student: its training's wall time (soft_labels: with its teacher's pass)
    majority_of: int | None = None  # maj@k: the answer is the majority of k samples
    test: str | None = None  # the extra test split's label; None for the recipe's own split
    note: str | None = None  # why there is no score (e.g. "not trained: curation kept no input")
    control: str | None = None  # a control's role beside the distilled student ("gold labels (ceiling)", ...)
    eval_name: str | None = None  # its artifacts: eval/EVAL_NAME.json and, per example, eval/EVAL_NAME.jsonl
    # -- anything else a row held (a key of a newer or older version), kept as it was
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        """Its teacher or stage, its maj@k and its test split, as the report tables show them."""
        detail = self.teacher or self.stage or ""
        if self.majority_of:
            detail += f" maj@{self.majority_of}"
        if self.test:
            detail += f" [test: {self.test}]"
        return detail.strip()

    @property
    def system_label(self) -> str:
        """Its system, with a control's role (`gold — gold labels (ceiling)`), as the report tables show it."""
        return f"{self.system} — {self.control}" if self.control else self.system

    @property
    def method_label(self) -> str:
        """Its method with its shots (`direct, 0-shot`), as the report tables show it."""
        return self.method + (f", {self.shots}-shot" if self.shots is not None else "")

    def to_dict(self) -> dict[str, Any]:
        """What report.json stores: every field under its own key (`extra`'s keys at the top level)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        data["metrics"] = dict(self.metrics)
        return {**data, **{k: v for k, v in self.extra.items() if k not in data}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        """A row of report.json (any version) or a dict with an evaluation's result and its labels."""
        known = _FIELDS
        values = {k: v for k, v in data.items() if k in known}
        values["metrics"] = dict(values.get("metrics") or {})
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def __getitem__(self, key: str) -> Any:
        """`row["score"]`: a row read as the dict report.json holds (what `s2distill.api` returned
        before rows were typed); new code reads the attributes."""
        data = self.to_dict()
        if key not in data:
            raise KeyError(key)
        return data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """`row.get("teacher")`, as on report.json's dict."""
        return self.to_dict().get(key, default)

    # the rest of a read-only mapping, so code written against the dict rows keeps working
    # (`"score" in row`, `dict(row)`, `json.dumps(dict(row))`, `pandas.DataFrame(map(dict, rows))`)
    def keys(self):
        return self.to_dict().keys()

    def items(self):
        return self.to_dict().items()

    def __iter__(self):
        return iter(self.to_dict())

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def __len__(self) -> int:
        return len(self.to_dict())


_FIELDS = frozenset(f.name for f in fields(Row)) - {"extra"}


def rows_of(rows: Iterable[Row | Mapping[str, Any]]) -> list[Row]:
    """Rows, whether given as `Row`s or as report.json's dicts."""
    return [row if isinstance(row, Row) else Row.from_dict(row) for row in rows]
