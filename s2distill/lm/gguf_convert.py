"""Convert a GGUF checkpoint to a float32 safetensors folder without holding it twice in memory.

`AutoModelForCausalLM.from_pretrained(..., gguf_file=...)` followed by `save_pretrained` peaks at
3.2 GiB for Gemma 3 270M on the quickstart's first run: the de-quantised state dict and the model
built from it live side by side, and gguf-py de-quantises the 262,144-row embedding in one go with
several float32 temporaries of 670 MB each. Here the weights are de-quantised straight into one
preallocated tensor each, a bounded number of rows at a time, and written with safetensors (which
writes from the tensors' own memory); the model is built on the meta device only to learn the
parameter names. transformers' own name map and tensor processor (e.g. Gemma's `norm - 1`) are
reused, so the result is the same file `save_pretrained` writes (tested tensor for tensor).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROWS_PER_CHUNK = 8192  # 8,192 embedding rows de-quantise into 21 MB of float32 at a time


def dequantized_rows(tensor, rows_per_chunk: int = ROWS_PER_CHUNK) -> np.ndarray:
    """De-quantise one GGUF tensor into a fresh float32 array, `rows_per_chunk` rows at a time."""
    from gguf import dequantize

    data = tensor.data
    if data.ndim < 2 or data.shape[0] <= rows_per_chunk:
        return np.ascontiguousarray(dequantize(data, tensor.tensor_type), dtype=np.float32)
    first = dequantize(data[:rows_per_chunk], tensor.tensor_type)
    out = np.empty((data.shape[0], *first.shape[1:]), dtype=np.float32)
    out[:rows_per_chunk] = first
    for start in range(rows_per_chunk, data.shape[0], rows_per_chunk):
        out[start : start + rows_per_chunk] = dequantize(data[start : start + rows_per_chunk], tensor.tensor_type)
    return out


def convert_gguf_weights(gguf_file: Path, target: Path) -> None:
    """Write `config.json`, `generation_config.json` and `model.safetensors` for `gguf_file` in `target`.

    The tokenizer is left to the caller (`AutoTokenizer.from_pretrained(..., gguf_file=...)`).
    """
    import torch
    from gguf import GGUFReader
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
        read_field,
    )

    config = AutoConfig.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    reader = GGUFReader(gguf_file)
    architecture = read_field(reader, "general.architecture")[0]
    # Keep the tensors (views of the memory-mapped file) and drop the reader: its parsed metadata,
    # one small array per vocabulary entry, holds 0.67 GB for Gemma's 262k-token vocabulary.
    gguf_tensors = reader.tensors
    del reader
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=config.to_dict())
    names = get_gguf_hf_weights_map(skeleton, processor)

    tensors: dict[str, torch.Tensor] = {}
    for tensor in gguf_tensors:
        result = processor.process(
            weights=dequantized_rows(tensor), name=tensor.name, tensor_key_mapping=names, parsed_parameters={}
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

