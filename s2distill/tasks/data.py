"""Reading the offline data sets, each file checked against the published SHA256SUMS once."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from s2distill.errors import DataError
from s2distill.paths import data_dir


@cache
def _expected_hashes(root: Path) -> dict[str, str]:
    sums = root / "SHA256SUMS"
    if not sums.exists():
        return {}
    pairs = (line.split(maxsplit=1) for line in sums.read_text().splitlines() if line.strip())
    return {name.strip().lstrip("*"): digest for digest, name in pairs}


_recorders: list[dict[str, Path]] = []


@contextmanager
def files_read() -> Iterator[dict[str, Path]]:
    """Record the data files read inside the block ({relative name: path}), for report.json's
    provenance."""
    files: dict[str, Path] = {}
    _recorders.append(files)
    try:
        yield files
    finally:
        _recorders.remove(files)


def data_file(relative: str, root: Path | None = None) -> Path:
    """Return the path of a data file, verified against SHA256SUMS; raise with the reason if not."""
    path = _verified_file(relative, root or data_dir())
    for files in _recorders:
        files[relative] = path
    return path


@cache
def _verified_file(relative: str, root: Path) -> Path:
    path = root / relative
    if not path.exists():
        raise FileNotFoundError(f"data file {relative} is missing from {root}")
    expected = _expected_hashes(root).get(relative)
    if expected is not None:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise DataError(f"data file {path} does not match SHA256SUMS (got {actual[:12]}…, want {expected[:12]}…): "
                            f"it is damaged or was edited; restore it from its source (see {root / 'SOURCES.md'})")
    return path


def read_json(relative: str, root: Path | None = None):
    try:
        return json.loads(data_file(relative, root).read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"data file {relative} is not valid JSON ({exc.msg}, line {exc.lineno}): the file is "
                        "truncated or damaged; restore it from its source") from None


def read_lines(relative: str, root: Path | None = None) -> list[str]:
    return data_file(relative, root).read_text(encoding="utf-8", errors="replace").splitlines()


def read_jsonl(relative: str, root: Path | None = None) -> list[dict]:
    """The rows of a JSON-lines data file (blank lines skipped); a damaged line is a `DataError`."""
    rows = []
    for number, line in enumerate(read_lines(relative, root), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"data file {relative} (in {root or data_dir()}) line {number} is not valid JSON "
                                f"({exc.msg}): the file is truncated or damaged; restore it from its source") from None
    return rows


def name_pools(root: Path | None, *, reserved: set[str], seed: int) -> tuple[list[str], list[str]]:
    """The first names of wordlists/propernames minus `reserved` (case-insensitive), shuffled with
    a fixed `seed` and cut into two disjoint halves: the training pool and the test pool.

    The seed is the task's own constant, not the run's: the split must not move between runs.
    """
    names = sorted({n.strip() for n in read_lines("wordlists/propernames", root) if n.strip().isalpha()})
    excluded = {word.lower() for word in reserved}
    names = [n for n in names if n.lower() not in excluded]
    random.Random(seed).shuffle(names)
    half = len(names) // 2
    return names[:half], names[half:]
