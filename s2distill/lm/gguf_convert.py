"""Convert a GGUF checkpoint to a float32 safetensors folder without holding it twice in memory.

`AutoModelForCausalLM.from_pretrained(..., gguf_file=...)` followed by `save_pretrained` peaks at
3.2 GiB for Gemma 3 270M on the quickstart's first run: the de-quantised state dict and the model
built from it live side by side, and gguf-py de-quantises the 262,144-row embedding in one go with
several float32 temporaries of 670 MB each. Here the weights are de-quantised straight into one
preallocated tensor each, a bounded number of rows at a time, and written with safetensors (which
writes from the tensors' own memory); the model is built on the meta device only to learn the
parameter names. transformers' own name map and tensor processor (e.g. Gemma's `norm - 1`) are
reused, so the result is the same file `save_pretrained` writes (tested tensor for tensor).

The whole metadata is parsed once, by transformers' `AutoConfig`; the tensors are found by reading
the tensor table past the metadata (`tensor_table`), and the tokenizer is built with the model type
given (`gguf_tokenizer`: transformers' fast metadata reader, 5-7 s with the vocabulary). gguf-py's `GGUFReader` builds a numpy view per
vocabulary entry: 13-18 s per parse of Gemma's 262,144 tokens on the AVX-512 BF16 machine, and the
conversion used to parse the file three times (config, tensors, and `AutoTokenizer`'s own look at
the config), 47 of its 60 seconds (benchmarks/gguf_convert.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROWS_PER_CHUNK = 8192  # 8,192 embedding rows de-quantise into 21 MB of float32 at a time


def dequantized_rows(data: np.ndarray, ggml_type: int, rows_per_chunk: int = ROWS_PER_CHUNK) -> np.ndarray:
    """De-quantise one GGUF tensor (`data` in gguf-py's shape: rows of bytes for a block type) into a
    float32 array, `rows_per_chunk` rows at a time (an F32 tensor of no more rows comes back as the
    file's own read-only view, as gguf-py's `dequantize` gives it)."""
    from gguf import dequantize

    if data.ndim < 2 or data.shape[0] <= rows_per_chunk:
        return np.ascontiguousarray(dequantize(data, ggml_type), dtype=np.float32)
    first = dequantize(data[:rows_per_chunk], ggml_type)
    out = np.empty((data.shape[0], *first.shape[1:]), dtype=np.float32)
    out[:rows_per_chunk] = first
    for start in range(rows_per_chunk, data.shape[0], rows_per_chunk):
        out[start : start + rows_per_chunk] = dequantize(data[start : start + rows_per_chunk], ggml_type)
    return out


def tensor_table(gguf_file: Path) -> tuple[str, list[tuple[str, int, np.ndarray]]]:
    """`(architecture, [(gguf_name, ggml_type, data)])`: the file's `general.architecture` and each
    tensor as a read-only view of the mapped file, in the shape gguf-py's reader gives (a block
    type's last axis in bytes, F32 and F16 as values), nothing read yet. The table is read past the
    metadata without building it (s2distill/lm/gguf_header.py)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    from s2distill.lm.gguf_header import read_gguf_table

    header = read_gguf_table(gguf_file)
    blob = np.memmap(gguf_file, mode="r", dtype=np.uint8)
    table = []
    for entry in header.tensors:
        if entry.ggml_type not in GGML_QUANT_SIZES:
            raise ValueError(f"{gguf_file}: tensor {entry.name} has ggml type {entry.ggml_type}, unknown to gguf-py")
        ggml_type = GGMLQuantizationType(entry.ggml_type)
        block, block_bytes = GGML_QUANT_SIZES[ggml_type]
        shape = tuple(reversed(entry.dims))  # numpy order: the slowest-moving first
        if shape[-1] % block:
            raise ValueError(f"{gguf_file}: tensor {entry.name}'s rows ({shape[-1]}) are not whole {ggml_type.name} blocks")
        row_bytes = shape[-1] // block * block_bytes
        start = header.data_start + entry.offset
        end = start + int(np.prod(shape[:-1])) * row_bytes
        if end > len(blob):
            raise ValueError(f"{gguf_file}: tensor {entry.name} ends at byte {end}, past the file's {len(blob)}: truncated?")
        data = blob[start:end].reshape(*shape[:-1], row_bytes)
        if ggml_type == GGMLQuantizationType.F32:  # what GGUFReader gives for plain floats: the values
            data = data.view(np.float32)
        elif ggml_type == GGMLQuantizationType.F16:
            data = data.view(np.float16)
        table.append((entry.name, ggml_type, data))
    return header.architecture, table


def gguf_tokenizer(gguf_file: Path, model_type: str):
    """The tokenizer a GGUF describes. `AutoTokenizer` given no `tokenizer_type` parses the whole file
    again to learn the model type (13-18 s for Gemma's vocabulary): the converted config already says it."""
    from transformers import AutoTokenizer
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

    known = {"tokenizer_type": model_type} if TOKENIZER_MAPPING_NAMES.get(model_type) else {}
    return AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, **known)


def convert_gguf_weights(gguf_file: Path, target: Path) -> None:
    """Write `config.json`, `generation_config.json` and `model.safetensors` for `gguf_file` in `target`.

    The tokenizer is left to the caller (`gguf_tokenizer`, given the written config's model type).
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    config = AutoConfig.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    architecture, table = tensor_table(gguf_file)
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=config.to_dict())
    names = get_gguf_hf_weights_map(skeleton, processor)

    tensors: dict[str, torch.Tensor] = {}
    for name, ggml_type, data in table:
        result = processor.process(
            weights=dequantized_rows(data, ggml_type), name=name, tensor_key_mapping=names, parsed_parameters={}
        )
        if result.name in names:
            tensors[names[result.name]] = torch.from_numpy(np.ascontiguousarray(result.weights, dtype=np.float32))
    expected = {name for name, _ in skeleton.named_parameters()}  # a tied lm_head is listed once, as the embedding
    if missing := sorted(expected - set(tensors)):
        raise RuntimeError(f"{gguf_file.name}: no GGUF tensor for {len(missing)} parameters, e.g. {missing[:3]}")

    config.architectures = [type(skeleton).__name__]
    config.dtype = torch.float32
    config.save_pretrained(target)
    GenerationConfig.from_model_config(config).save_pretrained(target)
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})

