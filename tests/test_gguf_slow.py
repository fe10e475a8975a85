"""GGUF written from the embedded model's own GGUF file, read back by transformers' GGUF reader.
Marked slow: the template's 262k-token vocabulary makes it take minutes on a loaded CPU."""

from __future__ import annotations

import pytest

from s2distill.student.gguf import GGUFExportError, embedded_template, write_gguf_from_template

pytestmark = pytest.mark.slow

SMALL = {"gemma3.embedding_length": 64, "gemma3.block_count": 2, "gemma3.feed_forward_length": 128,
         "gemma3.attention.head_count": 2, "gemma3.attention.head_count_kv": 1, "gemma3.attention.key_length": 32,
         "gemma3.attention.value_length": 32}


def test_a_small_gemma3_round_trips_through_the_gguf_writer(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

    template = embedded_template()
    if template is None:
        pytest.skip("the embedded model's package is not installed")
    config = Gemma3TextConfig(vocab_size=262144, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=512,
                              sliding_window=512, rms_norm_eps=1e-6, rope_theta=1e6)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.normal_(0, 0.1)  # non-zero norms: the 1 + w storage is exercised
    with pytest.raises(GGUFExportError, match="not the same architecture"):
        write_gguf_from_template(model, template, tmp_path / "bad.gguf")  # the template's hparams are 270M's
    write_gguf_from_template(model, template, tmp_path / "model.gguf", tensor_type="f32", overrides=SMALL)
    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="model.gguf", dtype=torch.float32).eval()
    original, read = model.state_dict(), back.state_dict()
    assert set(original) == set(read)
    assert all(torch.allclose(original[k], read[k], atol=1e-6) for k in original)
    ids = torch.tensor([[2, 100, 2000, 30000]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, back(ids).logits, atol=1e-4)
