"""The run folder as a set of fingerprinted artifacts: a stage is redone only when what it was
computed from changed (as `make` or DVC would).

`RunFolder.stage(name, artifact, spec=..., inputs=..., compute, codec)` is the one way a stage
writes: the artifact's path is named once, relative to the run folder; `spec` is the frozen, typed
spec of exactly the settings the stage reads (stages/specs.py) and `inputs` every input artifact it
reads. What it was made from (the stage's kind, the stage code's version, the spec's identity and
the inputs' fingerprints) is derived from those two, never written by hand; its hash is the
artifact's fingerprint, kept in the artifact's seal. On a rerun the stage is

- kept, when the artifact matches its seal and its fingerprint is the one computed now;
- redone, when the fingerprint differs (the message names what changed, e.g.
  `train.epochs: 4 -> 5` or `input samples:pal changed`), when the artifact was truncated or
  edited since it was written, or when `--redo` names the stage;
- computed, when it does not exist yet.

Every decision is logged (`RunFolder.log`) and goes into the report, so a user sees which stages
this invocation ran and why.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from s2distill.errors import RunFolderError
from s2distill.artifacts import folder_digest, iter_jsonl, read_json, seal_of, sealed, write_json, write_jsonl, write_seal
from s2distill.types import Example, Trace, Verdict

STAGE_KINDS = ("inputs", "samples", "curation", "compress", "distill", "train", "eval", "reference", "audit")
# Bump when a stage's code changes what it computes for the same inputs, so old artifacts are redone.
# 2: fingerprints derived from typed stage specs (evaluations now record their method's every setting).
STAGE_CODE_VERSION = 2


@dataclass(frozen=True)
class Done:
    """A stage's result and the fingerprint that downstream stages record as their input: the
    artifact's *content* checksum (as DVC records its outputs' hashes), so a stage redone with the
    same result leaves every stage after it kept."""

    value: Any
    fingerprint: str


@dataclass(frozen=True)
class Codec:
    """How one kind of artifact is written and read back. A `streamed` codec's stage may compute
    an iterator, written as it comes; its result is then the artifact read back (`Rows`)."""

    save: Callable[[Path, Any, dict], None]  # (path, value, seal extra)
    load: Callable[[Path], Any]
    streamed: bool = False


class Rows:
    """A JSONL artifact's rows, read from the file each time it is iterated and never held: the
    result of a stage whose later readers go through it in order (samples, verdicts, training
    pairs), so that memory stays flat in the number of inputs."""

    def __init__(self, path: Path, from_row: Callable[[dict], Any]):
        self.path, self.from_row = path, from_row

    def rows(self) -> Iterator[dict]:
        """The rows as written (a reader that needs a field or two builds no object)."""
        return iter_jsonl(self.path)

    def __iter__(self) -> Iterator[Any]:
        return map(self.from_row, self.rows())

    def __len__(self) -> int:
        """From the seal: a row is a line."""
        return seal_of(self.path)["lines"]

    def __bool__(self) -> bool:
        return len(self) > 0

    def __repr__(self) -> str:
        return f"Rows({str(self.path)!r})"


def _rows_codec(to_row: Callable[[Any], dict], from_row: Callable[[dict], Any], *, streamed: bool = False) -> Codec:
    load = (lambda path: Rows(path, from_row)) if streamed else (lambda path: [from_row(row) for row in iter_jsonl(path)])
    return Codec(lambda path, value, extra: write_jsonl(path, (to_row(v) for v in value), seal=extra), load, streamed)


ROWS = _rows_codec(lambda row: row, lambda row: row)
STREAMED_ROWS = _rows_codec(lambda row: row, lambda row: row, streamed=True)
EXAMPLES = _rows_codec(lambda e: {"id": e.id, "inputs": e.inputs}, lambda row: Example(row["id"], row["inputs"]))
TRACES = _rows_codec(Trace.to_dict, Trace.from_dict, streamed=True)
VERDICTS = _rows_codec(Verdict.to_row, Verdict.from_row, streamed=True)
JSON = Codec(lambda path, value, extra: write_json(path, value, seal=extra), read_json)
# A folder the stage's compute wrote whole (trained weights): only its seal is written afterwards.
FOLDER = Codec(lambda path, value, extra: write_seal(path, extra), lambda path: path)


def fingerprint(made_from: dict) -> str:
    return hashlib.sha256(json.dumps(made_from, sort_keys=True, default=str).encode()).hexdigest()[:16]


def made_from(name: str, spec: Any, inputs: dict[str, Done | str | None]) -> dict:
    """What an artifact is made from, derived: the stage's kind, the stage code's version, the
    spec's identity (`StageSpec.identity`) and the fingerprint of every input artifact given."""
    fingerprints = {key: value.fingerprint if isinstance(value, Done) else value
                    for key, value in inputs.items() if value is not None}
    own = spec.identity()
    if own.keys() & {"stage", "code", "inputs"}:  # a spec field by one of these names would be hidden
        raise ValueError(f"{type(spec).__name__}: a spec field may not be named stage, code or inputs")
    return {"stage": name.split(":")[0], "code": STAGE_CODE_VERSION, **own, "inputs": fingerprints}


def what_changed(before: dict | None, now: dict) -> str:
    """The first few differences between two `made_from`s, as `a.b: old -> new`."""
    if not before:
        return "made by an older version of s2distill"
    if before.get("code") != now.get("code"):
        return (f"made by an older version of s2distill (stage code {before.get('code')} -> {now.get('code')}: "
                "its fingerprint now records every setting the stage reads)")
    old, new = _flatten(before), _flatten(now)
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "∅") != new.get(key, "∅"):
            if key.startswith("inputs."):
                changes.append(f"input {key.removeprefix('inputs.')} changed")
            else:
                changes.append(f"{key}: {_short(old.get(key, '∅'))} -> {_short(new.get(key, '∅'))}")
    return "; ".join(changes[:4]) + (f" (and {len(changes) - 4} more)" if len(changes) > 4 else "") or "changed"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): json.dumps(data, sort_keys=True, default=str)}


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class StageRecord:
    name: str
    status: str  # kept | computed | redone
    reason: str = ""
    seconds: float | None = None


@dataclass
class RunFolder:
    """The run folder: fingerprinted stages over atomically written, sealed artifacts."""

    root: Path
    console: Console
    redo: Sequence[str] = ()
    log: list[StageRecord] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _earlier: dict[str, StageRecord] = field(default_factory=dict)  # computed by an earlier pass (`new_pass`)

    def new_pass(self) -> None:
        """The run goes through its stages again in this invocation (after a batch round: lm/batch.py).
        What an earlier pass computed stays logged as computed, not as kept, and a stage `--redo`
        named is not redone a second time."""
        self._earlier.update({record.name: record for record in self.log if record.status != "kept"})
        self.log = []

    def load_timings(self) -> None:
        """Each stage's last compute time, kept across invocations (timings.json)."""
        if sealed(self.root / "timings.json"):
            self.timings = read_json(self.root / "timings.json")

    def path(self, artifact: str) -> Path:
        return self.root / artifact

    def stage(self, name: str, artifact: str, *, spec: Any, inputs: dict[str, Done | str | None],
              compute: Callable[[], Any], codec: Codec) -> Done:
        """The artifact, loaded when it is current, else computed, written and sealed (see module doc)."""
        path = self.path(artifact)
        made_from_ = made_from(name, spec, inputs)
        print_ = fingerprint(made_from_)
        seal = seal_of(path)
        forced = self._forced(name)
        if seal is not None and sealed(path) and seal.get("fingerprint") == print_ and not forced:
            self.log.append(self._earlier.get(name) or StageRecord(name, "kept"))
            return Done(codec.load(path), _content_id(path, seal))
        if seal is None and not path.exists():
            status, reason = "computed", ""
        elif forced:
            status, reason = "redone", "--redo"
        elif not sealed(path):
            status, reason = "redone", "the artifact does not match its seal (truncated or edited)"
        elif seal is None:  # a folder written in place (weights) whose stage stopped before sealing it
            status, reason = "redone", "unfinished: it has no seal (its stage stopped before the end)"
        else:
            status, reason = "redone", what_changed(seal.get("made_from"), made_from_)
        self.console.print(f"[bold]▶ {name}[/bold]" + (f" [dim](redo: {reason})[/dim]" if reason else ""))
        start = time.perf_counter()
        value = compute()  # a streamed codec's is computed as it is written
        codec.save(path, value, {"fingerprint": print_, "made_from": made_from_})
        if codec.streamed:
            value = codec.load(path)
        seconds = round(time.perf_counter() - start, 1)
        self.timings[name] = seconds
        write_json(self.root / "timings.json", self.timings)  # every stage's last compute time, across invocations
        self.log.append(StageRecord(name, status, reason, seconds))
        return Done(value, _content_id(path, seal_of(path) or {}))

    def __post_init__(self) -> None:
        unknown = [r for r in self.redo if r.split(":")[0] not in STAGE_KINDS]
        if unknown:
            raise RunFolderError(f"--redo {unknown[0]}: no such stage; a kind ({', '.join(STAGE_KINDS)}) or one "
                                 "stage by the name the run prints (e.g. train:distilled/stage1)")

    def _forced(self, name: str) -> bool:
        return name not in self._earlier and any(_redo_names(r, name) for r in self.redo)

    def unmatched_redo(self) -> list[str]:
        """The `--redo` names that matched no stage of this run (a typo in a stage's name)."""
        return [r for r in self.redo if not any(_redo_names(r, rec.name) for rec in self.log)]


def _content_id(path: Path, seal: dict) -> str:
    """What downstream stages record of an artifact: its content checksum from its seal."""
    return "content:" + (seal.get("sha256") or folder_digest(path))[:16]


def _redo_names(redo: str, name: str) -> bool:
    """Whether `--redo REDO` names stage `name`: the stage itself (`train:distilled/stage1`) or its kind (`train`)."""
    return name == redo or name.split(":")[0] == redo


def stage_kinds(records: Iterable[StageRecord]) -> dict[str, int]:
    """How many stages this invocation kept, computed and redid."""
    out = {"kept": 0, "computed": 0, "redone": 0}
    for record in records:
        out[record.status] += 1
    return out
