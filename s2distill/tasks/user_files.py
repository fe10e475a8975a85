"""Reading the user's own data files: JSONL, JSON (a list of objects), CSV, Parquet, or a local
Hugging Face `datasets` folder written by `save_to_disk` (nothing is fetched from a hub).

Every failure is a `DataError` naming the file and, where there is one, the line. Text files
(JSONL, JSON, CSV) are read as UTF-8, a leading byte-order mark ignored (Excel writes one); a file
that is not UTF-8 is one error naming the byte where decoding failed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from s2distill.errors import DataError

FORMATS = ("jsonl", "json", "csv", "parquet", "datasets")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _format_of(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    if path.is_dir():
        return "datasets"
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; set task.format "
                        f"({', '.join(FORMATS)})")
    return fmt


def read_text(path: Path, error: type[Exception] = DataError) -> str:
    """A text file's content as UTF-8 (a leading byte-order mark dropped); a file that is not UTF-8
    raises `error` naming the file, the byte offset and the line where decoding failed."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)  # offsets count from the file's first byte
        line = data.count(b"\n", 0, start) + 1
        raise error(f"{path}: not UTF-8 text: byte offset {start} (line {line}) is 0x{data[start]:02x}; "
                    "save the file as UTF-8") from None


def parse_jsonl(path: Path, error: type[Exception] = DataError) -> list[Any]:
    """The values of a JSON-lines file, blank lines skipped; a line that is not JSON, or a file that is
    not UTF-8, raises `error` naming the file and the line (the byte offset)."""
    rows = []
    for number, line in enumerate(read_text(path, error).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise error(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
    return rows


def read_rows(path: Path, declared: str, split: str | None) -> tuple[str, list[Any]]:
    """(a name for error messages, the rows) of a data file or datasets folder."""
    fmt = _format_of(path, declared)
    if fmt == "jsonl":
        return f"{path}", parse_jsonl(path)
    if fmt == "json":
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: a JSON data file holds a list of objects, got {type(data).__name__}")
        return f"{path}", data
    if fmt == "csv":
        return f"{path}", list(csv.DictReader(io.StringIO(read_text(path), newline="")))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return f"{path}", pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    name, dataset = _dataset_split(path, split)
    return f"{path} (split {name})", dataset.to_list()


def _load_dataset_folder(path: Path):
    from datasets import load_from_disk

    try:
        return load_from_disk(str(path))
    except Exception as exc:  # FileNotFoundError or a datasets error for a folder that is not one
        raise DataError(f"{path}: not a datasets folder written by save_to_disk ({exc})") from None


def _dataset_split(path: Path, split: str | None):
    from datasets import DatasetDict

    data = _load_dataset_folder(path)
    if not isinstance(data, DatasetDict):
        if split is not None:
            raise DataError(f"{path}: task.split {split!r} given, but the folder holds a single split")
        return "all", data
    names = list(data)
    name = split or ("train" if "train" in names else names[0] if len(names) == 1 else None)
    if name is None or name not in names:
        raise DataError(f"{path}: choose the split of inputs with task.split (splits: {', '.join(names)})")
    return name, data[name]


def held_out_split(path: Path, declared: str, split: str | None) -> tuple[str, list[Any]] | None:
    """A datasets folder's own `test` split, when the inputs come from another of its splits."""
    if _format_of(path, declared) != "datasets":
        return None
    from datasets import DatasetDict

    data = _load_dataset_folder(path)
    name, _ = _dataset_split(path, split)
    if isinstance(data, DatasetDict) and "test" in data and name != "test":
        return f"{path} (split test)", data["test"].to_list()
    return None
