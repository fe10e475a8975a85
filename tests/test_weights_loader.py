"""s2distill/lm/weights.py: the blockwise loader gives exactly the model `from_pretrained` gives."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from s2distill.lm import weights
from s2distill.lm.tiny import tiny_model_dir
from s2distill.lm.weights import load_causal_lm, read_header


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_blockwise_load_equals_from_pretrained(dtype, monkeypatch):
    """The tiny model's file is float32: bfloat16 and float16 are read blockwise, float32 mapped."""
    folder = tiny_model_dir()
    expected = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    read = []
    original = weights.BlockwiseTensor.__getitem__
    monkeypatch.setattr(weights.BlockwiseTensor, "__getitem__", lambda self, key: read.append(self) or original(self, key))
    # 1,000 bytes a block: the embedding (a few hundred rows) is read in many blocks, the last one short
    loaded = load_causal_lm(folder, dtype, block_bytes=1000)
    assert bool(read) == (dtype != torch.float32)  # which path the load took
    assert loaded.name_or_path == expected.name_or_path == str(folder)  # PEFT names an adapter's base by it
    want, got = expected.state_dict(), loaded.state_dict()
    assert got.keys() == want.keys()
    for name, tensor in want.items():
        assert got[name].dtype == tensor.dtype == dtype and torch.equal(got[name], tensor), name
    assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight  # still tied
    assert loaded.config.to_dict() == expected.config.to_dict()
    assert loaded.generation_config.to_dict() == expected.generation_config.to_dict()
    assert type(loaded) is type(expected) and not loaded.training
    prompt = torch.tensor([[5, 9, 40, 41, 42]])
    assert torch.equal(loaded(prompt).logits, expected(prompt).logits)


def test_a_truncated_weights_file_is_an_error_that_says_so(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir(), folder)
    weights = folder / "model.safetensors"
    header, data_start = read_header(weights)
    end = max(entry["data_offsets"][1] for entry in header.values())
    with open(weights, "r+b") as f:
        f.truncate(data_start + end // 2)
    with pytest.raises(OSError, match="truncated"):
        load_causal_lm(folder, torch.bfloat16)


def test_a_folder_without_one_safetensors_file_loads_through_from_pretrained(tmp_path):
    """A sharded checkpoint (model-0000N-of-0000M.safetensors and its index) takes the mapped path."""
    folder = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir()).save_pretrained(folder, max_shard_size="20KB")
    assert not (folder / "model.safetensors").exists() and len(list(folder.glob("*.safetensors"))) > 1
    loaded = load_causal_lm(folder, torch.bfloat16)
    expected = AutoModelForCausalLM.from_pretrained(tiny_model_dir(), dtype=torch.bfloat16)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.state_dict().items())
