"""`dtype: int8`: generation with int8 linear weights on a CPU (s2distill/lm/int8.py), never picked
by `auto`, and a model name that keeps its completions apart."""

from __future__ import annotations

import pytest

import s2distill.hardware as hardware
from s2distill.lm.hf import HFLM
from s2distill.lm.tiny import tiny_model_dir
from s2distill.types import Request

PROMPTS = ["Q: Ada Bob\nA:", "Q: Tom Joe Al\nA:", "Q: Zed Yan\nA:"]


@pytest.mark.parametrize("flags", [{"avx2"}, {"avx2", "avx512f"}, {"avx2", "avx512f", "avx512_bf16"}])
def test_auto_never_picks_int8(monkeypatch, flags):
    """int8 cost the quickstart's distilled student 13 points (README): it is asked for, never chosen."""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    assert hardware.resolve_dtype("auto", "cpu") in ("float32", "bfloat16")
    assert hardware.resolve_dtype("int8", "cpu") == "int8"  # an explicit choice is kept


def test_int8_quantises_every_linear_layer_and_keeps_the_logits():
    import torch

    float32 = HFLM(tiny_model_dir(), dtype="float32", lm_head="model")
    int8 = HFLM(tiny_model_dir(), dtype="int8")
    reference, tokenizer = float32.load()
    quantised, _ = int8.load()
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    linear = [m for m in quantised.modules() if isinstance(m, torch.nn.Linear | DynamicQuantizedLinear)]
    assert linear and all(isinstance(m, DynamicQuantizedLinear) for m in linear)
    assert quantised.lm_head.weight().dtype == torch.qint8
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        a = reference(**enc).logits[:, -1].float()
        b = quantised(**enc).logits[:, -1].float()
    assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.99
    assert not torch.equal(a, b)  # really another computation, not the float32 model


def test_int8_generates_and_is_another_model_in_cache_keys():
    int8 = HFLM(tiny_model_dir(), dtype="int8", name="tiny:int8")
    float32 = HFLM(tiny_model_dir(), dtype="float32", lm_head="model")
    assert int8.dtype == "int8" and float32.name.endswith(":float32")
    out = int8.generate([Request(prompt=p, temperature=0.0, max_tokens=6) for p in PROMPTS])
    assert [len(c) for c in out] == [1, 1, 1]
    assert all(0 < c[0].usage.completion_tokens <= 6 for c in out)


def test_int8_on_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CPU only"):
        HFLM(tiny_model_dir(), dtype="int8", device="cuda").load()
