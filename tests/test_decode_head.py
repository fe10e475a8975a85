"""The CPU decode loop's LM head (s2distill/lm/decode_head.py) and its KV cache with reserved room
(s2distill/lm/kv_buffer.py): the same logits and tokens as transformers' own, for less memory
traffic; the int8 head close to float32, each row independent of its batch."""

from __future__ import annotations

import pytest
import torch

from s2distill.lm import decode_head
from s2distill.lm.decode_head import DecodeHead
from s2distill.lm.hf import HFLM
from s2distill.lm.int8 import wants_int8_head
from s2distill.lm.kv_buffer import reserve
from s2distill.lm.tiny import tiny_model_dir
from s2distill.types import Request

PROMPTS = ["Q: Ada Bob\nA:", "Q: Tom Joe Al\nA:", "Q: Zed Yan\nA:"]


def _head(vocab: int = 1000, hidden: int = 64, bias: bool = False) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(hidden, vocab, bias=bias)


@pytest.mark.parametrize("bias", [False, True])
def test_blocks_give_the_linear_layers_logits(monkeypatch, bias):
    monkeypatch.setattr(decode_head, "BLOCK", 300)  # 1,000 tokens: four blocks, the last one short
    monkeypatch.setattr(decode_head, "FLOAT32_BLOCK", 200)  # float32 weights have blocks of their own
    linear = _head(bias=bias)
    head = DecodeHead(linear)
    assert len(head.blocks) == 5
    hidden = torch.randn(5, 2, 64)
    with torch.inference_mode():
        assert torch.allclose(head(hidden), linear(hidden), atol=1e-5)
        with head.reusing_output():  # written block by block into the kept buffer's columns
            assert torch.allclose(head(hidden), linear(hidden), atol=1e-5)
        bf16 = DecodeHead(linear.to(torch.bfloat16))
        got = bf16(hidden.to(torch.bfloat16))
        assert got.dtype == torch.float32  # the sampler's dtype, computed from bf16 weights
        assert torch.allclose(got, linear(hidden.to(torch.bfloat16)).float(), atol=2e-2)


def test_int8_logits_are_close_and_each_row_is_independent_of_its_batch(monkeypatch):
    monkeypatch.setattr(decode_head, "BLOCK", 300)
    linear = _head()
    head = DecodeHead(linear, int8=True)
    hidden = torch.randn(7, 64)
    hidden[3] *= 50  # one row far larger than the others: a batch-wide scale would blur the rest
    with torch.inference_mode():
        batch, reference = head(hidden), linear(hidden)
        alone = torch.cat([head(hidden[i : i + 1]) for i in range(len(hidden))])
    assert torch.equal(batch, alone)  # integer sums: exactly the same logits whatever shares the batch
    assert torch.nn.functional.cosine_similarity(batch, reference, dim=-1).min() > 0.999
    assert not torch.equal(batch, reference)  # really the int8 computation


def test_the_kept_buffer_is_reused_only_inside_reusing_output():
    head = DecodeHead(_head())
    hidden = torch.randn(4, 64)
    with torch.inference_mode():
        one, two = head(hidden), head(hidden)
        assert one.data_ptr() != two.data_ptr()  # fresh logits by default
        with head.reusing_output():
            first = head(hidden).clone()
            a = head(hidden)
            b = head(hidden[:2])  # fewer rows: the front of the same buffer
            assert a.data_ptr() == b.data_ptr()
            assert torch.allclose(b, first[:2], atol=1e-6)


@pytest.mark.parametrize(("lm_head", "dtype", "device", "fast_int8", "expected"), [
    ("auto", "float32", "cpu", True, True),    # AVX-512 VNNI without BF16: the head is half a float32 step
    ("auto", "float32", "cpu", False, False),  # AVX2 alone: int8 matmuls are slower than float32
    ("auto", "bfloat16", "cpu", True, False),
    ("auto", "float32", "cuda", True, False),
    ("model", "float32", "cpu", True, False),
    ("int8", "float32", "cpu", False, True),   # asked for: given, fast or not
    ("auto", "int8", "cpu", True, False),      # dtype int8 quantises the head with every other layer
])
def test_which_models_get_an_int8_head(monkeypatch, lm_head, dtype, device, fast_int8, expected):
    from s2distill import hardware

    monkeypatch.setattr(hardware, "fast_int8", lambda: fast_int8)
    assert wants_int8_head(lm_head, dtype, device) is expected


def test_an_int8_head_with_bf16_is_a_clear_error():
    with pytest.raises(ValueError, match="float32 on a CPU"):
        wants_int8_head("int8", "bfloat16", "cpu")


def test_the_int8_head_is_another_model_in_cache_keys_and_generates():
    int8_head = HFLM(tiny_model_dir(), dtype="float32", device="cpu", lm_head="int8")
    plain = HFLM(tiny_model_dir(), dtype="float32", device="cpu", lm_head="model")
    assert int8_head.name.endswith(":float32+int8-head") and plain.name.endswith(":float32")
    model, _ = int8_head.load()
    assert isinstance(model.get_output_embeddings(), DecodeHead) and model.get_output_embeddings().int8
    out = int8_head.generate([Request(prompt=p, temperature=0.0, max_tokens=6) for p in PROMPTS])
    assert all(0 < c[0].usage.completion_tokens <= 6 for c in out)


def test_reserved_room_gives_the_same_logits_as_transformers_cache():
    """Decoding on from a prefilled cache, with and without `reserve`: the same logits step by step,
    also after rows leave the batch (the decode loop's `reorder_cache`)."""
    plain = HFLM(tiny_model_dir(), dtype="float32", device="cpu", lm_head="model")
    model, tokenizer = plain.load()
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    logits = []
    with torch.inference_mode():
        for reserved in (False, True):
            out = model(**enc, use_cache=True)
            cache, mask, step = out.past_key_values, enc.attention_mask, out.logits[:, -1].argmax(-1)[:, None]
            if reserved:
                reserve(cache, 3)  # room for 3 steps; the 4th grows the buffer
            seen = []
            for i in range(5):
                if i == 2:  # the middle row finishes
                    keep = torch.tensor([0, 2])
                    cache.reorder_cache(keep)
                    mask, step = mask[keep], step[keep]
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                positions = mask.sum(-1, keepdim=True) - 1
                step_out = model(input_ids=step, attention_mask=mask, position_ids=positions, past_key_values=cache,
                                 use_cache=True)
                seen.append(step_out.logits[:, -1].clone())
                step = seen[-1].argmax(-1)[:, None]
            logits.append(seen)
    for a, b in zip(*logits):
        assert torch.allclose(a, b, atol=1e-5)
