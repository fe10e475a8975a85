"""The transformers backend's own decoding loop: greedy equals `model.generate`, and sharing a
prompt prefix across a batch changes no output."""

from __future__ import annotations

from s2distill.lm.hf import HFLM, _common_prefix_length
from s2distill.lm.tiny import tiny_model_dir
from s2distill.types import Request

PREFIX = "Q: Take the last letters of the words in a phrase and concatenate them.\nA: ok\n\n" * 2
PROMPTS = [PREFIX + f"Q: {w}\nA:" for w in ("Ada Bob", "Eve", "Tom Joe Al", "Zed Yan")]


def _lm(**kwargs) -> HFLM:
    return HFLM(tiny_model_dir(), dtype="float32", batch_rows=16, **kwargs)


def test_common_prefix_length():
    assert _common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert _common_prefix_length([[5, 6], [7]]) == 0


def test_greedy_decoding_equals_model_generate():
    import torch

    lm = _lm(share_prefix=False)
    model, tokenizer = lm.load()
    ours = lm.generate([Request(prompt=p, temperature=0.0, max_tokens=12) for p in PROMPTS])
    for prompt, [completion] in zip(PROMPTS, ours):
        enc = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        reference = out[0, enc.input_ids.shape[1]:].tolist()
        reference = reference[: next((i for i, t in enumerate(reference) if t in lm._eos), len(reference))]
        assert completion.text == tokenizer.decode(reference, skip_special_tokens=True)
        assert completion.usage.prompt_tokens == enc.input_ids.shape[1]


def test_a_shared_prefix_changes_no_output_greedy_or_sampled():
    requests = [Request(prompt=p, temperature=0.0, max_tokens=10) for p in PROMPTS]
    requests += [Request(prompt=p, temperature=0.9, top_p=0.95, max_tokens=10, n=3, seed=7) for p in PROMPTS]
    shared, whole = _lm(share_prefix=True).generate(requests), _lm(share_prefix=False).generate(requests)
    assert [[c.text for c in cs] for cs in shared] == [[c.text for c in cs] for cs in whole]
    assert [[c.usage for c in cs] for cs in shared] == [[c.usage for c in cs] for cs in whole]


def test_sample_k_is_the_same_alone_and_in_a_mixed_batch():
    lm = _lm()
    alone = lm.generate([Request(prompt=PROMPTS[0], temperature=0.9, max_tokens=10, n=3, seed=3)])[0]
    mixed = lm.generate([
        Request(prompt=PROMPTS[1], temperature=0.0, max_tokens=6),
        Request(prompt=PROMPTS[0], temperature=0.9, max_tokens=10, n=3, seed=3),
        Request(prompt=PROMPTS[2], temperature=0.7, max_tokens=8, n=2, seed=1),
    ])[1]
    assert [c.text for c in alone] == [c.text for c in mixed]


def test_a_tiny_top_p_gives_the_argmax():
    lm = _lm()
    greedy = lm.generate([Request(prompt=p, temperature=0.0, max_tokens=8) for p in PROMPTS])
    nucleus = lm.generate([Request(prompt=p, temperature=1.0, top_p=1e-6, max_tokens=8, seed=5) for p in PROMPTS])
    assert [c[0].text for c in greedy] == [c[0].text for c in nucleus]


def test_the_shortlist_nucleus_is_the_exact_top_p_distribution():
    """Drawing many times from one row: the shortlist path's frequencies match the exact nucleus
    of the full softmax (top-p 0.9 over a known distribution)."""
    import torch

    from s2distill.lm.hf import _pick_tokens

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05] + [0.0] * 2000]).clamp(min=1e-12))
    request = Request(prompt="x", temperature=1.0, top_p=0.9)
    generator = torch.Generator().manual_seed(0)
    draws = [_pick_tokens(logits, [request], [generator])[0] for _ in range(4000)]
    counts = [draws.count(t) / len(draws) for t in range(4)]
    # nucleus at 0.9: tokens 0, 1, 2 (0.5 + 0.3 + 0.15 = 0.95 ≥ 0.9), renormalised by 0.95
    for got, want in zip(counts, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0]):
        assert abs(got - want) < 0.03, counts
    greedy = Request(prompt="x", temperature=0.0)
    assert _pick_tokens(logits.repeat(2, 1), [greedy, request], [generator, generator])[0] == 0


def test_a_completions_log_probability_is_the_models_own():
    """`Request(logprobs=True)`: the sum of log p(token) of the generated tokens, at temperature 1,
    equal to a forward pass over prompt and completion (where the text re-tokenises to the same
    tokens: the greedy rows here; the tiny model's sampled bytes do not)."""
    import torch

    lm = _lm()
    model, tokenizer = lm.load()
    requests = [Request(prompt=p, temperature=t, max_tokens=8, logprobs=True, seed=3) for p in PROMPTS[:2]
                for t in (0.0, 0.9)]
    compared = 0
    for request, [completion] in zip(requests, lm.generate(requests)):
        assert completion.logprob is not None and completion.logprob < 0
        prompt_ids = tokenizer(request.prompt).input_ids
        generated = tokenizer(request.prompt + completion.text).input_ids[len(prompt_ids):]
        if len(generated) != completion.usage.completion_tokens:
            continue  # the decoded text re-tokenises differently: not comparable token for token
        ids = torch.tensor([prompt_ids + generated])
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        expected = logits.log_softmax(-1).gather(-1, torch.tensor(generated)[:, None]).sum().item()
        assert abs(completion.logprob - expected) < 1e-3, (completion.logprob, expected)
        compared += 1
    assert compared >= 2
    [[plain]] = lm.generate([Request(prompt=PROMPTS[0], temperature=0.0, max_tokens=8)])
    assert plain.logprob is None  # only when asked


def test_next_lanes_groups_unfinished_rows_by_their_token():
    from s2distill.lm.hf import _next_lanes

    # lane 0 holds rows 0, 1, 2 (row 1 drew another token: a fork); lane 1's only row finished
    lanes, sources, inputs = _next_lanes([[0, 1, 2], [3]], {0: 7, 1: 9, 2: 7, 3: 5}, [False, False, False, True])
    assert lanes == [[0, 2], [1]] and sources == [0, 0] and inputs == [7, 9]


def test_batches_bound_the_prompts_and_the_rows():
    from s2distill.lm.hf import _batches

    texts = {0: "a", 1: "b", 2: "c"}
    rows = [(0, k) for k in range(3)] + [(1, k) for k in range(3)] + [(2, 0)]
    assert [len(b) for b in _batches(rows, texts, batch_rows=2)] == [6, 1]  # two prompts a batch
    assert [len(b) for b in _batches(rows, texts, batch_rows=1)] == [3, 3, 1]
    many = [(0, k) for k in range(9)]
    assert [len(b) for b in _batches(many, {0: "a"}, batch_rows=2)] == [8, 1]  # at most 4 rows per prompt


def test_a_sample_decoded_in_a_shared_lane_equals_it_decoded_alone():
    """The samples of a prompt share a lane until their draws differ; each must still be the text
    its own generator gives when it is the only row of the batch."""
    lm = _lm()
    lm.load()
    for temperature, top_p in ((0.9, 1.0), (0.7, 0.95), (1.0, 1e-6)):
        request = Request(prompt=PROMPTS[0], temperature=temperature, top_p=top_p, max_tokens=10, n=4, seed=11)
        together = lm._decode([request] * 4, [PROMPTS[0]] * 4, [0, 1, 2, 3])
        alone = [lm._decode([request], [PROMPTS[0]], [k])[0] for k in range(4)]
        assert [c.text for c in together] == [c.text for c in alone]
        assert [c.usage for c in together] == [c.usage for c in alone]


def test_samples_that_agree_are_computed_once():
    """A nucleus of one token (top-p 1e-6): every sample draws the argmax, so the four samples of a
    prompt stay one lane and each decoding step computes one row per prompt; at a high temperature
    they fork, and the steps compute more rows."""
    lm = _lm()
    model, _ = lm.load()
    widths: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, _a, kw: widths.append(kw["input_ids"].shape[0]), with_kwargs=True)
    try:
        agreeing = lm.generate([Request(prompt=p, temperature=1.0, top_p=1e-6, max_tokens=8, n=4, seed=2) for p in PROMPTS[:2]])
        assert all(len({c.text for c in cs}) == 1 for cs in agreeing)
        steps = widths[2:]  # after the shared-prefix and the prompts' prefill passes
        assert steps and max(steps) <= 2, widths
        widths.clear()
        forking = lm.generate([Request(prompt=PROMPTS[0], temperature=5.0, max_tokens=8, n=4, seed=2)])
        assert len({c.text for c in forking[0]}) > 1
        assert max(widths[1:]) > 1, widths
    finally:
        handle.remove()
