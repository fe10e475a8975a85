"""A variant's outputs, read back from its sources' sample artifacts input by input.

Curation, the curation summary and the training sets each need a variant's sampled outputs, but
only one input's at a time: every filter decides per input, and a training pair is built from one
input's verdict and kept outputs. A samples artifact is written in (input, sample) order
(`methods.runner.iter_program`), so each source's file is read in step with the inputs, one
group of rows at a time, and memory stays flat in the number of inputs: held whole, the traces of
100k inputs × 8 samples were 1.6 GB (benchmarks/scale.py).

An input's outputs are its sources' in the variant's order of sources, each source's in sample
order (only sample 0 for the baselines that say so), as they were when every trace was held.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from s2distill.errors import RunFolderError
from s2distill.stages.folder import Done
from s2distill.types import Trace, Verdict
from s2distill.distill.variants import Variant

SampleSet = Mapping[tuple[str, bool], Done]  # (source, perturbed) -> its samples stage


@dataclass(frozen=True)
class Outputs:
    """The outputs one variant curates (`perturbed`: those on the perturbed inputs)."""

    variant: Variant
    samples: SampleSet
    perturbed: bool = False

    def samples_read(self) -> dict[str, Done]:
        """The samples artifacts a stage reads the kept outputs' text from (rationales, final responses),
        as its inputs: a verdict records answers, not texts, so samples that change only in their text
        must still redo the stages built from them."""
        return {f"samples:{name}": self.samples[(name, False)] for name in self.variant.sources}

    def rows(self) -> Iterator[dict]:
        """Every output as its artifact row, source by source (what counting needs: no Trace built)."""
        for name in self.variant.sources:
            yield from self._source_rows(name)

    def tallies(self) -> Iterator[tuple[str, bool, bool, bool]]:
        """(teacher, parseable?, failed?, truncated?) of every output: what the curation summary counts
        (a failed sample: refused by the server, or its user program failed; a truncated one: a call
        cut at its budget, which curation keeps out whatever its answer, so it is not parseable)."""
        for row in self.rows():
            truncated = _truncated(row)
            yield (_key(row)[1], row.get("answer") is not None and not truncated, "failed" in (row.get("meta") or {}),
                   truncated)

    def __iter__(self) -> Iterator[Trace]:
        return (Trace.from_dict(row) for row in self.rows())

    def by_input(self, ids: Iterable[str]) -> Iterator[tuple[str, list[Trace]]]:
        """(input id, its outputs) for each of `ids`, in their order (an input with none: [])."""
        for example_id, rows in self.rows_by_input(ids):
            yield example_id, [Trace.from_dict(row) for row in rows]

    def rows_by_input(self, ids: Iterable[str]) -> Iterator[tuple[str, list[dict]]]:
        """`by_input` as artifact rows. `ids` must follow the inputs' order, as the artifacts do;
        a row left over at the end (an artifact not in that order) is an error, raised before
        the stage reading it can seal anything."""
        sources = [_Grouped(self._source_rows(name), self._path(name)) for name in self.variant.sources]
        for example_id in ids:
            group: list[dict] = []
            for source in sources:
                source.take(example_id, group)
            yield example_id, group
        for source in sources:
            source.check_exhausted()

    def chunks(self, ids: Iterable[str], size: int) -> Iterator[dict[str, list[Trace]]]:
        """`by_input` as dicts of at most `size` inputs, in order: what a filter takes at once."""
        groups = self.by_input(ids)
        while chunk := dict(islice(groups, size)):
            yield chunk

    def kept(self, verdicts: Iterable[Verdict]) -> Iterator[tuple[Verdict, list[Trace]]]:
        """Each verdict (in input order, as curation writes them) with the outputs it keeps, as
        traces in the order of its `kept_outputs` (none for a dropped input). Only kept outputs
        are built; a kept reference with no output is a KeyError, as a missing trace always was."""
        verdicts = iter(verdicts)
        current: list[Verdict] = []

        def ids() -> Iterator[str]:
            for verdict in verdicts:
                current[:] = [verdict]
                yield verdict.example_id

        for example_id, rows in self.rows_by_input(ids()):
            verdict = current[0]
            by_key = {_key(row): row for row in rows} if verdict.kept else {}  # the last of equal keys, as before
            kept = []
            for ref in verdict.kept_outputs if verdict.kept else ():
                key = (example_id, ref.teacher, ref.sample)
                if key not in by_key:
                    raise KeyError(key)
                kept.append(Trace.from_dict(by_key[key]))
            yield verdict, kept

    def _path(self, name: str) -> Path | None:
        return self.samples[(name, self.perturbed)].value.path

    def _source_rows(self, name: str) -> Iterator[dict]:
        rows = self.samples[(name, self.perturbed)].value.rows()
        if self.variant.first_sample_only:
            return (row for row in rows if row.get("sample", 0) == 0)
        return rows


def _truncated(row: dict) -> bool:
    """`Trace.truncated` of a row: a call stopped at its length budget (a row written before calls
    recorded their finish reason reads as not cut)."""
    return any(call.get("finish_reason") == "length" for call in row.get("calls") or ())


def _key(row: dict) -> tuple[str, str, int]:
    """`curation.output_key` of a row: (input id, teacher, sample); an artifact written before
    `teacher` was a field kept it in `meta` (as `Trace.from_dict` reads it)."""
    teacher = row["teacher"] if "teacher" in row else (row.get("meta") or {}).get("teacher", "")
    return row["example_id"], teacher, row.get("sample", 0)


class _Grouped:
    """One source's rows, taken an input's run at a time."""

    def __init__(self, rows: Iterator[dict], path: Path | None):
        self.rows, self.path = rows, path
        self.head = next(rows, None)

    def take(self, example_id: str, into: list[dict]) -> None:
        while self.head is not None and self.head["example_id"] == example_id:
            into.append(self.head)
            self.head = next(self.rows, None)

    def check_exhausted(self) -> None:
        if self.head is not None:
            raise RunFolderError(f"{self.path or 'a samples artifact'}: the outputs of input {self.head['example_id']!r} "
                                 "are not in the inputs' order; redo its stage (--redo samples)")
