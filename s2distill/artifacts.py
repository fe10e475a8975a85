"""The run folder: every stage's artifact is a file in it, written atomically and sealed.

A stage whose artifact exists *and matches its seal* is done and is skipped on a rerun. Each file
is written under a temporary name private to its writer (process and thread), then renamed into
place once complete, so a killed run never leaves a half-written artifact that looks finished and
two writers never share a temporary file. Beside each artifact, `NAME.seal` records its line count
and SHA256, written before the artifact is renamed into place: an artifact that was truncated,
emptied or edited afterwards no longer matches and is redone, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s2distill.errors import RunFolderError

SEAL = ".seal"


def _partial(path: Path) -> Path:
    """A temporary name that no other process or thread writes."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")


def _naming(path: Path, tmp: Path, exc: OSError) -> OSError:
    """A failed write names the file being written, not its temporary name (a full disk's error
    from `write()` names none), so the one-line error says which file."""
    if exc.filename in (None, str(tmp)):
        exc.filename = str(path)
    return exc


def atomic_write_bytes(path: Path, content: bytes) -> None:
    """Write `path` whole or not at all: a private temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(path)
    try:
        with open(tmp, "xb") as f:  # x: never another writer's file
            f.write(content)
        os.replace(tmp, path)
    except OSError as exc:
        raise _naming(path, tmp, exc)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def folder_written_whole(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """A private staging folder, renamed to `target` once the block completes, so a killed writer
    never leaves a half-written folder that looks finished. When `target` appeared meanwhile (another
    process built the same thing), it is kept unless `replace`."""
    staging = _partial(target)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        yield staging
        if replace:
            shutil.rmtree(target, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:
            if not target.exists() or replace:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(path: Path, data: bytes, seal: dict | None = None) -> None:
    _write_chunks(path, [data], seal)


def _write_chunks(path: Path, chunks: Iterable[bytes], seal: dict | None = None) -> None:
    """Write `chunks` to a private temporary file as they come, counting and hashing them on the
    way; then the seal, then the rename into place (the same order and content as a whole write).

    Streaming keeps no copy of the whole artifact in memory: joined into one string and then
    encoded, the samples of 10k inputs × 8 were two copies of 61 MB (benchmarks/scale.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(path)
    digest, size, lines = hashlib.sha256(), 0, 0
    try:
        with open(tmp, "xb") as f:  # x: never another writer's file
            for chunk in chunks:
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
        content = {"lines": lines, "bytes": size, "sha256": digest.hexdigest(), **(seal or {})}
        atomic_write_bytes(path.with_name(path.name + SEAL), json.dumps(content).encode())
        os.replace(tmp, path)
    except OSError as exc:
        raise _naming(path, tmp, exc)
    finally:
        tmp.unlink(missing_ok=True)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]], *, seal: dict | None = None) -> None:
    """Rows as JSON lines; `seal` adds to the seal (a stage's fingerprint and what it was made from).
    Written in blocks of rows as they are serialized (see `_write_chunks`)."""
    _write_chunks(path, _jsonl_blocks(rows), seal)


def _jsonl_blocks(rows: Iterable[dict[str, Any]], block: int = 1000) -> Iterator[bytes]:
    lines: list[str] = []
    for row in rows:
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
        if len(lines) >= block:
            yield "".join(lines).encode()
            lines = []
    if lines:
        yield "".join(lines).encode()


def write_json(path: Path, data: Any, *, seal: dict | None = None) -> None:
    _write(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode(), seal)


def folder_digest(folder: Path) -> str:
    """SHA-256 over a folder's files: each one's path below the folder, size and content, in
    path order (files read in blocks: no copy of a model's weights in memory)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_seal(folder: Path, seal: dict) -> None:
    """The seal of a folder written whole (trained weights): its fingerprint and its checksum."""
    atomic_write_bytes(folder.with_name(folder.name + SEAL), json.dumps({"sha256": folder_digest(folder), **seal}).encode())


def seal_of(path: Path) -> dict | None:
    """The seal beside an artifact, or None when it has none (or it is unreadable)."""
    try:
        return json.loads(path.with_name(path.name + SEAL).read_text())
    except (OSError, ValueError):
        return None


def sealed(path: Path) -> bool:
    """Whether `path` is a complete artifact: a file or a folder (trained weights) whose content
    matches its seal's checksum (a folder sealed by an older version, without one: that it exists)."""
    seal = path.with_name(path.name + SEAL)
    if path.is_dir():
        expected = seal_of(path) or {}
        return "sha256" not in expected or expected["sha256"] == folder_digest(path)
    if not path.is_file() or not seal.is_file():
        return False
    try:
        expected = json.loads(seal.read_text())
        if expected.get("bytes") != path.stat().st_size:  # truncated or grown: no need to hash it
            return False
        digest = hashlib.sha256()
        with path.open("rb") as f:  # in blocks: no copy of the whole artifact in memory
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except (OSError, ValueError):
        return False
    return expected.get("sha256") == digest.hexdigest()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a JSONL file one at a time (a stage's loader builds its objects from them
    without a second list of every row)."""
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RunFolderError(f"{path} line {number} is not valid JSON ({exc.msg}): the artifact is damaged; "
                                         "delete it (and its .seal) and run again to redo its stage") from None
                yield row


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path} is not valid JSON ({exc.msg}): the file is damaged; delete it and run again "
                             "to redo its stage") from None
