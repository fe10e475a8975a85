"""Load a causal LM from a local folder without a memory peak the size of its file on top of the model.

`AutoModelForCausalLM.from_pretrained(folder, dtype=...)` memory-maps `model.safetensors`. Where the
file's dtype is the one asked for, the mapped pages *are* the model: no copy, no transient. Where it
converts (the embedded Gemma 3 270M's float32 file loaded in bfloat16, `auto` on a CPU with native
bf16), every page it reads stays resident until the mapping closes, at the end of loading, beside the
converted copy: 1.0 GiB above what the loaded model holds (benchmarks/model_load.py). Every
evaluation, the cascade, the audit and training load a model, so that transient was the
quickstart's peak on the AVX-512 BF16 machine (3.01 GiB in `audit:system1-train`,
docs/benchmarks.md, memory.py).

There, `load_causal_lm` hands `from_pretrained` the weights itself, as its `state_dict` of lazy
values (`BlockwiseTensor`): each tensor read with `pread` (no mapping), 16 MiB of the file at a time,
into one tensor of the target dtype, so the transient is a block (a few, where transformers reads
lazy values on its thread pool). (safetensors' own `backend="pread"` slices were 100× slower: 16 s
for the embedding.) Loading still goes through
`from_pretrained`, so the model's class, its tied weights, its buffers and its generation config
are transformers' own (tests/test_weights_loader.py: every tensor and the logits equal to the mapped
load's, both dtypes).

Everything else loads through `from_pretrained` as before: nothing to convert, a folder without one
`model.safetensors` (a sharded checkpoint, `.bin` files), a tensor dtype this reader does not know
(FP8, for one), a dtype given other than as a torch dtype, or a model `AutoModelForCausalLM` would
not build plainly from its config (`_picked_plainly`: remote code, a composite config, quantisation,
an adapter folder, modules kept in float32).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch

BLOCK_BYTES = 16 << 20  # of the file read per block: a few milliseconds, a negligible transient
# safetensors' dtype names (https://github.com/huggingface/safetensors, the format's header) -> torch's
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
_FLOATS = {"F64", "F32", "F16", "BF16"}  # converted to the dtype asked for; the others are read as stored
_NAMES = {getattr(torch, name): code for code, name in _DTYPES.items()}


def read_header(path: Path) -> tuple[dict[str, dict], int]:
    """A safetensors file's tensor entries (name -> dtype, shape, data_offsets) and where its data
    starts: an 8-byte little-endian header length, then the header's JSON."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


class BlockwiseTensor:
    """One tensor of a safetensors file, read when `from_pretrained` asks for it (`tensor[...]`,
    which is all its loader does with a lazy value), `block_bytes` of the file at a time, into one
    tensor of the target dtype (straight into it when the dtypes are the same)."""

    def __init__(self, fd: int, entry: dict, data_start: int, dtype: torch.dtype | None, block_bytes: int = BLOCK_BYTES,
                 *, name: str = "a tensor"):
        """`dtype`: the tensor's in memory (None: as stored, for integer tensors); `name`: for errors."""
        self._fd, self._entry, self._data_start, self._name = fd, entry, data_start, name
        self.dtype, self._block_bytes = dtype, block_bytes

    def __getitem__(self, key: Any) -> torch.Tensor:
        if key is not Ellipsis:
            raise TypeError(f"a BlockwiseTensor is read whole (tensor[...]), not with {key!r}")
        stored = getattr(torch, _DTYPES[self._entry["dtype"]])
        shape = self._entry["shape"]
        begin, end = self._entry["data_offsets"]
        out = torch.empty(shape, dtype=self.dtype or stored)
        rows = out.reshape(shape[0] if shape else 1, -1)  # a view: the leading dimension's rows
        row_bytes = max(1, (end - begin) // max(1, rows.shape[0]))
        per_block = max(1, self._block_bytes // row_bytes)
        for first in range(0, rows.shape[0], per_block):
            target = rows[first : first + per_block]
            block = target if stored == out.dtype else torch.empty(target.shape, dtype=stored)
            self._read_into(block, self._data_start + begin + first * row_bytes)
            if block is not target:
                target.copy_(block)
        return out

    def _read_into(self, tensor: torch.Tensor, offset: int) -> None:
        view = memoryview(tensor.view(-1).view(torch.uint8).numpy())
        done = 0
        while done < len(view):  # pread may return short
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got <= 0:
                raise OSError(f"{self._name}: the safetensors file ended at byte {offset + done}: truncated?")
            done += got


def _picked_plainly(model_class, config, folder: Path) -> bool:
    """Whether `AutoModelForCausalLM` would build `model_class` from `config` as it is, with every
    parameter in the dtype asked for: one class for the config's own type (not a composite config's
    text part, nor a choice among classes), no remote code, no quantisation, no adapter folder, and
    no module the class keeps in float32 (its values would be rounded to `dtype` first). Anything
    else loads through `from_pretrained` itself."""
    return (isinstance(model_class, type) and getattr(model_class, "config_class", None) is type(config)
            and not getattr(config, "auto_map", None) and getattr(config, "quantization_config", None) is None
            and not (folder / "adapter_config.json").exists()
            and not getattr(model_class, "_keep_in_fp32_modules", None)
            and not getattr(model_class, "_keep_in_fp32_modules_strict", None))


def load_causal_lm(folder: Path, dtype, *, block_bytes: int = BLOCK_BYTES, **kwargs: Any):
    """`AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)`, its weights read
    blockwise when the load converts their dtype (see the module docstring)."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    folder = Path(folder)
    weights = folder / "model.safetensors"
    config = kwargs.pop("config", None) or AutoConfig.from_pretrained(folder)
    header, data_start = read_header(weights) if weights.is_file() else ({}, 0)
    stored = {entry["dtype"] for entry in header.values()}
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING.get(type(config), None)
    if (not header or not isinstance(dtype, torch.dtype) or not stored <= _DTYPES.keys()
            or stored & _FLOATS <= {_NAMES.get(dtype)}  # nothing to convert: the mapped file is the model
            or not _picked_plainly(model_class, config, folder)):
        return AutoModelForCausalLM.from_pretrained(folder, config=config, dtype=dtype, **kwargs)
    fd = os.open(weights, os.O_RDONLY)
    try:
        state = {name: BlockwiseTensor(fd, entry, data_start, dtype if entry["dtype"] in _FLOATS else None,
                                       block_bytes, name=f"{weights}: {name}") for name, entry in header.items()}
        model = model_class.from_pretrained(None, config=config, state_dict=state, dtype=dtype, **kwargs)
    finally:
        os.close(fd)
    # as from_pretrained(folder) records it: the config's, and the model's own, which PEFT writes
    # into a trained adapter's adapter_config.json as its base model
    model.config.name_or_path = model.name_or_path = str(folder)
    if (folder / "generation_config.json").is_file():  # from_pretrained(None) derives one from the config
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model
