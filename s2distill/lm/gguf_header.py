"""A GGUF file's tensor table, read past its metadata without building it.

gguf-py's `GGUFReader` builds a numpy view for every part of every metadata value: Gemma 3's
262,144-entry vocabulary makes 1.5 million of them, 13-18 s. transformers' header reader
(`transformers.integrations.gguf.reader`) skips the vocabulary but reads it through `struct` on a
numpy memory map, 22 s here. The tensor table needs none of those values, only their lengths: this
walks them on a plain `mmap` (0.1 s) and reads the tensors' names, shapes, types
and offsets. The format is GGUF v2/v3 (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md);
the tensors are compared with `GGUFReader`'s in tests/test_gguf_convert.py.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import NamedTuple

# metadata value types of fixed width: uint8, int8, uint16, int16, uint32, int32, float32, bool,
# uint64, int64, float64; 8 is a string, 9 an array
_WIDTH = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
DEFAULT_ALIGNMENT = 32  # the format's, where `general.alignment` is absent


class TensorEntry(NamedTuple):
    name: str
    dims: tuple[int, ...]  # as the file stores them: the fastest-moving first
    ggml_type: int
    offset: int  # from the start of the data section


class GgufTable(NamedTuple):
    architecture: str
    tensors: list[TensorEntry]
    data_start: int  # the data section's offset in the file


def read_gguf_table(path: Path) -> GgufTable:
    """`general.architecture`, the tensor entries and where their data begins."""
    try:
        return _read(path)
    except struct.error as exc:  # a read past the end: the walk left the file
        raise ValueError(f"{path}: the GGUF metadata ends early (truncated or corrupt): {exc}") from exc


def _read(path: Path) -> GgufTable:
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        if blob[:4] != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file (no GGUF magic bytes)")
        version, n_tensors, n_values = struct.unpack_from("<IQQ", blob, 4)
        if version not in (2, 3):
            endian = " (a big-endian file?)" if version > 0xFFFF else ""
            raise ValueError(f"{path}: GGUF version {version}{endian}; this reader knows little-endian versions 2 and 3")
        pos, wanted = 24, {}
        for _ in range(n_values):
            key, pos = _string(blob, pos)
            (kind,) = struct.unpack_from("<I", blob, pos)
            pos += 4
            if key == "general.architecture" and kind == _STRING:
                wanted[key], pos = _string(blob, pos)
            elif key == "general.alignment":
                (wanted[key],) = struct.unpack_from("<I", blob, pos) if kind == 4 else (None,)
                if not wanted[key] or wanted[key] % 8:  # the format: a uint32, a multiple of 8
                    raise ValueError(f"{path}: general.alignment is not a nonzero uint32 multiple of 8")
                pos += 4
            else:
                pos = _skip(blob, pos, kind)
        tensors = []
        for _ in range(n_tensors):
            name, pos = _string(blob, pos)
            (n_dims,) = struct.unpack_from("<I", blob, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", blob, pos + 4)
            ggml_type, offset = struct.unpack_from("<IQ", blob, pos + 4 + 8 * n_dims)
            pos += 4 + 8 * n_dims + 12
            tensors.append(TensorEntry(name, tuple(dims), ggml_type, offset))
    if "general.architecture" not in wanted:
        raise ValueError(f"{path}: no general.architecture in its metadata")
    alignment = wanted.get("general.alignment", DEFAULT_ALIGNMENT)
    return GgufTable(wanted["general.architecture"], tensors, (pos + alignment - 1) // alignment * alignment)


def _string(blob, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", blob, pos)
    if pos + 8 + length > len(blob):
        raise struct.error(f"a string of {length} bytes at byte {pos} runs past the file's end")
    return blob[pos + 8 : pos + 8 + length].decode("utf-8"), pos + 8 + length


def _skip(blob, pos: int, kind: int) -> int:
    """The offset just past a value of type `kind` at `pos`."""
    if kind in _WIDTH:
        return pos + _WIDTH[kind]
    if kind == _STRING:
        return pos + 8 + struct.unpack_from("<Q", blob, pos)[0]
    if kind != _ARRAY:
        raise ValueError(f"unknown GGUF metadata value type {kind}")
    element, count = struct.unpack_from("<IQ", blob, pos)
    pos += 12
    if element in _WIDTH:
        return pos + count * _WIDTH[element]
    for _ in range(count):
        pos = _skip(blob, pos, element)
    return pos
