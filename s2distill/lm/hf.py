"""Local transformers models as an LM: batched, with the prompt's prefill shared across samples.

Decoding is a short loop of our own rather than `model.generate`, for reasons that matter to
distillation: (1) each prompt is prefilled once, and its `n` samples share one row of the forward
pass for as long as their tokens agree (a *lane*, forked when their draws differ: `_decode`), so
the many samples that self-consistency asks for cost little more than one where the model is
sure; (2) each sample draws from its own generator seeded by (seed, sample index), so sample `k`
does not depend on how many other samples or prompts were asked for alongside it (up to the
float rounding of different batch shapes, which can flip a near-tie in bf16), and the cache can
store and replay samples one by one. Greedy rows take the argmax. Stop strings, end-of-sequence
and `max_tokens` end a row, and finished rows leave the batch.

On a CPU a step's memory traffic matters as much as its arithmetic, so the loop computes the LM
head in vocabulary blocks into a kept buffer (lm/decode_head.py; in int8 where that is fast),
writes each step's keys and values into room reserved after the prompt (lm/kv_buffer.py), and
normalises the sampler's distribution a few rows at a time (`_log_normaliser`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path

from s2distill.hardware import available_cores, default_device, resolve_dtype
from s2distill.lm.base import gather_samples, render_messages, sample_rows, truncate_at_stop
from s2distill.lm.kv_buffer import reserve
from s2distill.types import Completion, Request, Usage

log = logging.getLogger(__name__)


class HFLM:
    """A causal LM from a local folder (optionally with a PEFT adapter), on CPU or GPU."""

    def __init__(
        self,
        path: str | Path,
        *,
        adapter: str | Path | None = None,
        dtype: str = "auto",
        device: str | None = None,
        batch_rows: int = 16,
        name: str | None = None,  # identity in cache keys; the adapter's fingerprint is appended
        threads: int | None = None,
        share_prefix: bool = True,  # prefill a prefix common to a batch's prompts once (see `_prefill`)
        lm_head: str = "auto",  # auto: int8 where the model runs in float32 on a CPU with fast int8 (lm/int8.py)
    ):
        from s2distill.lm.int8 import wants_int8_head

        self.path = Path(path)
        self.adapter = Path(adapter) if adapter else None
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self.int8_head = wants_int8_head(lm_head, self.dtype, device or default_device())
        self.batch_rows = batch_rows
        self.threads = threads
        self.share_prefix = share_prefix
        base = (name or f"hf:{self.path.resolve()}:{self.dtype}") + ("+int8-head" if self.int8_head else "")
        self.name = base + (f"+adapter:{_fingerprint(self.adapter)}" if self.adapter else "")
        self._model = None
        self._tokenizer = None
        self._head = None  # the CPU decode head, once loaded (s2distill/lm/decode_head.py)

    # -- loading -------------------------------------------------------------------------------
    def load(self):
        """Load the model and tokenizer once (lazily, so building an LM is free)."""
        if self._model is not None:
            return self._model, self._tokenizer
        import torch
        from transformers import AutoTokenizer

        from s2distill.lm.weights import load_causal_lm

        torch.set_num_threads(self.threads or available_cores())
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = AutoTokenizer.from_pretrained(self.path)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        int8 = self.dtype == "int8"
        if int8 and device != "cpu":
            raise ValueError("dtype int8 (dynamic quantisation) runs on a CPU only; on a GPU use bfloat16 or float16")
        model = load_causal_lm(self.path, torch.float32 if int8 else getattr(torch, self.dtype))  # no file-sized peak
        if self.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter).merge_and_unload()
        if int8:
            from s2distill.lm.int8 import quantize_int8

            model = quantize_int8(model.eval())
        elif device == "cpu":  # the vocabulary in cache-sized blocks, int8 where wanted (s2distill/lm/decode_head.py)
            from s2distill.lm.decode_head import install_decode_head

            self._head = install_decode_head(model, int8=self.int8_head)
        # PEFT leaves every weight frozen. With frozen bf16 weights, PyTorch 2.13's CPU `linear` on
        # the prefill's sliced last position takes a bmm path that copies the 262k-row LM head on
        # every call: 14.4 s instead of 0.9 s per prefill here. Under inference_mode,
        # requires_grad builds no graph, so restoring it costs nothing.
        model.requires_grad_(True)
        self._model, self._tokenizer = model.to(device).eval(), tokenizer
        self._device = device
        eos = model.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        return self._model, self._tokenizer

    def close(self) -> None:
        """Drop the weights (a later call loads them again)."""
        self._model = self._tokenizer = self._head = None

    @property
    def tokenizer(self):
        return self.load()[1]

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        self.load()
        rows = sample_rows(requests)
        texts = {i: self._prompt_text(r) for i, r in enumerate(requests)}
        # Sorting by prompt keeps a prompt's rows together (one shared prefill) and puts similar
        # lengths side by side (less padding).
        rows.sort(key=lambda row: (len(texts[row[0]]), texts[row[0]], row[1]))
        decoded: dict[tuple[int, int], Completion] = {}
        for chunk in _batches(rows, texts, self.batch_rows):
            for row, completion in zip(chunk, self._decode([requests[i] for i, _ in chunk], [texts[i] for i, _ in chunk], [k for _, k in chunk])):
                decoded[row] = completion
        return gather_samples(requests, decoded)

    def _prompt_text(self, request: Request) -> str:
        if request.prompt is not None:
            return request.prompt
        tokenizer = self.tokenizer
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": r, "content": c} for r, c in request.messages or ()]
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return render_messages(request.messages or ())

    def _decode(self, row_requests: list[Request], prompts: list[str], samples: list[int]) -> list[Completion]:
        """Decode one batch of rows: prompts share their common prefix (`_prefill`), and rows whose
        sequences are so far the same share one *lane* of the batch.

        A prompt's samples start as one lane: its prefill. At each step every row draws its own next
        token from its lane's logits with its own generator, as if it were alone; rows of a lane
        that drew the same token stay one lane, and a lane whose rows drew different tokens forks,
        its KV cache copied to each new lane. So the forward pass computes each distinct sequence
        once. This is exact: a lane's rows have the same tokens, hence the same next-token
        distribution, and each row's draw is its own. At temperature 0.7 and top-p 0.95 a few-shot
        program is mostly copied from the exemplars, where the nucleus is one token and every
        sample agrees, so a prompt's samples stay one lane for most of their tokens.
        """
        import torch

        tokenizer = self._tokenizer
        unique = list(dict.fromkeys(prompts))
        owner = [unique.index(p) for p in prompts]
        generators = []
        for req, k in zip(row_requests, samples):
            g = torch.Generator(device=self._device)
            g.manual_seed(req.sample_seed(k))
            generators.append(g)

        n_rows = len(row_requests)
        logprobs = [0.0 if req.logprobs else None for req in row_requests]  # summed log p of each kept token
        tokens: list[list[int]] = [[] for _ in range(n_rows)]
        texts = [""] * n_rows
        done = [False] * n_rows
        with torch.inference_mode(), self._head.reusing_output() if self._head is not None else nullcontext():
            logits, cache, mask, positions, prompt_lengths = self._prefill(unique)
            steps = max(r.max_tokens for r in row_requests)
            reserve(cache, steps)  # each step then writes its position in place (s2distill/lm/kv_buffer.py)
            positions = positions[:, -1:]
            lanes = [[r for r in range(n_rows) if owner[r] == u] for u in range(len(unique))]  # each lane's rows
            for _ in range(steps):
                live = [r for lane in lanes for r in lane]
                lane_of = [j for j, lane in enumerate(lanes) for _ in lane]
                picked = _pick_tokens(logits, [row_requests[r] for r in live], [generators[r] for r in live], lane_of)
                wanted = [j for j, r in enumerate(live) if logprobs[r] is not None]
                if wanted:  # the model's own log p (temperature 1) of the picked tokens
                    rows_ = torch.tensor([lane_of[j] for j in wanted], device=self._device)
                    chosen = torch.tensor([picked[j] for j in wanted], device=self._device)
                    step_lp = (logits[rows_, chosen] - torch.logsumexp(logits[rows_], dim=-1)).tolist()
                    step_of = dict(zip(wanted, step_lp))
                for j, (r, t) in enumerate(zip(live, picked)):
                    req = row_requests[r]
                    if t in self._eos:
                        done[r] = True
                        continue
                    tokens[r].append(t)
                    if logprobs[r] is not None:
                        logprobs[r] += step_of[j]
                    texts[r] = tokenizer.decode(tokens[r], skip_special_tokens=True)
                    if len(tokens[r]) >= req.max_tokens or (req.stop and truncate_at_stop(texts[r], req.stop)[1]):
                        done[r] = True
                lanes, sources, inputs = _next_lanes(lanes, dict(zip(live, picked)), done)
                if not lanes:
                    break
                if sources != list(range(logits.shape[0])):
                    # a lane forked (its cache copied to each branch) or lost every row (it leaves the batch)
                    index = torch.tensor(sources, device=self._device)
                    cache.reorder_cache(index)
                    mask, positions = mask[index], positions[index]
                step = torch.tensor(inputs, device=self._device)[:, None]
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                positions = positions + 1
                out = self._model(input_ids=step, attention_mask=mask, position_ids=positions, past_key_values=cache,
                                  use_cache=True)
                logits = out.logits[:, -1].float()

        completions = []
        for r, req in enumerate(row_requests):
            text, stopped = truncate_at_stop(texts[r], req.stop)
            finish = "stop" if stopped or len(tokens[r]) < req.max_tokens else "length"
            completions.append(Completion(text, Usage(prompt_lengths[owner[r]], len(tokens[r])), finish, samples[r],
                                          logprob=logprobs[r]))
        return completions

    def _prefill(self, prompts: list[str]):
        """Prefill distinct prompts: the last position's logits, the KV cache, the attention mask,
        the position ids, and each prompt's token count.

        Prompts that open with the same tokens — a few-shot prompt's exemplars, identical for every
        input — share that prefix: it is prefilled once, its KV cache copied to every prompt, and
        only the rest of each prompt is prefilled on top of it (what vLLM's automatic prefix caching
        does, here within a batch). The rows are laid out as [shared prefix][padding][own tokens],
        the positions counting real tokens only, so the result equals prefilling each prompt whole
        (up to the float rounding of other matmul shapes; tested on the tiny model).
        """
        import torch

        model, tokenizer, device = self._model, self._tokenizer, self._device
        ids = tokenizer(prompts).input_ids
        lengths = [len(x) for x in ids]
        shared = _common_prefix_length(ids) if len(ids) > 1 and self.share_prefix else 0
        shared = min(shared, min(lengths) - 1)  # every prompt keeps one token of its own: its logits are the output
        if shared < _MIN_SHARED_PREFIX:
            shared = 0
        own = [x[shared:] for x in ids]
        width = max(len(x) for x in own)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in own], device=device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in own], device=device)
        cache = None
        if shared:
            prefix = model(input_ids=torch.tensor([ids[0][:shared]], device=device), use_cache=True, logits_to_keep=1)
            cache = prefix.past_key_values
            cache.reorder_cache(torch.zeros(len(prompts), dtype=torch.long, device=device))
            mask = torch.cat([torch.ones(len(prompts), shared, dtype=mask.dtype, device=device), mask], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions[:, shared:], past_key_values=cache,
            use_cache=True, logits_to_keep=1,  # only the last position's logits: the full [batch, length, vocab] is huge
        )
        return out.logits[:, -1].float(), out.past_key_values, mask, positions, lengths


# A batch holds at most this many rows per distinct prompt on average (`_batches`).
_ROWS_PER_LANE = 4
# A shared prefix shorter than this is not worth a forward pass of its own.
_MIN_SHARED_PREFIX = 16
_SHORTLIST = 256  # top-p 0.95 at T 0.7 rarely reaches past a few dozen tokens; beyond it, the full sort


def _common_prefix_length(sequences: list[list[int]]) -> int:
    """How many leading tokens every sequence has in common."""
    first = sequences[0]
    n = min(len(x) for x in sequences)
    for i in range(n):
        token = first[i]
        if any(x[i] != token for x in sequences):
            return i
    return n


def _batches(rows: list[tuple[int, int]], texts: dict[int, str], batch_rows: int) -> Iterator[list[tuple[int, int]]]:
    """Consecutive (request, sample) rows in batches of at most `batch_rows` distinct prompts — the
    lanes a batch starts with (`_decode`) — and at most `_ROWS_PER_LANE` × `batch_rows` rows, which
    bounds the batch should every sample fork."""
    batch: list[tuple[int, int]] = []
    prompts: set[str] = set()
    for row in rows:
        text = texts[row[0]]
        if batch and ((text not in prompts and len(prompts) == batch_rows) or len(batch) == _ROWS_PER_LANE * batch_rows):
            yield batch
            batch, prompts = [], set()
        batch.append(row)
        prompts.add(text)
    if batch:
        yield batch


def _next_lanes(lanes: list[list[int]], picked: dict[int, int], done: list[bool]):
    """The lanes of the next step: each lane's unfinished rows grouped by the token they drew, in
    order. Returns the new lanes, the old lane each one continues (its KV cache row), and the token
    each one feeds the model."""
    new_lanes, sources, inputs = [], [], []
    for j, lane in enumerate(lanes):
        branches: dict[int, list[int]] = {}
        for r in lane:
            if not done[r]:
                branches.setdefault(picked[r], []).append(r)
        for token, rows in branches.items():
            new_lanes.append(rows)
            sources.append(j)
            inputs.append(token)
    return new_lanes, sources, inputs


def _pick_tokens(logits, requests: Sequence[Request], generators, lanes: Sequence[int] | None = None) -> list[int]:
    """The next token of every row: argmax for greedy rows, else a draw at the row's temperature
    and top-p from the row's own generator. Row `r` reads row `lanes[r]` of `logits` (rows that
    share a sequence share its logits; `_decode`), row `r` itself when `lanes` is None.

    Top-p is exact but cheap: the nucleus is looked for among the `_SHORTLIST` most likely tokens
    (one batched top-k on the logits instead of sorting the whole vocabulary per row), their
    probabilities normalised by one log-sum-exp over the vocabulary, so the full softmax of
    [rows × 262k] is never written; only a row whose shortlist holds less than `top_p` of the mass
    (or that asks for no top-p) computes its full distribution. Rows of one lane at one
    temperature share that work.
    """
    import torch

    lanes = list(range(len(requests))) if lanes is None else list(lanes)
    picked = [0] * len(requests)
    greedy = [r for r, req in enumerate(requests) if req.greedy]
    if greedy:
        greedy_lanes = list(dict.fromkeys(lanes[r] for r in greedy))
        best = dict(zip(greedy_lanes, logits[greedy_lanes].argmax(-1).tolist()))
        for r in greedy:
            picked[r] = best[lanes[r]]
    rows = [r for r, req in enumerate(requests) if not req.greedy]
    if not rows:
        return picked
    # one distribution per (lane, temperature)
    keys = list(dict.fromkeys((lanes[r], requests[r].temperature) for r in rows))
    key_lanes = [lane for lane, _ in keys]
    if len(set(key_lanes)) == len(key_lanes):
        # one temperature per lane (the usual case): work on the logits in place, every lane's row
        # (a greedy lane's is not read), rather than gather [rows × 262k] into a copy each step
        sampled, row_of = logits, {key: key[0] for key in keys}
        per_lane = dict.fromkeys(range(logits.shape[0]), 1.0) | dict(keys)
        temperatures = torch.tensor(list(per_lane.values()), device=logits.device)[:, None]
    else:  # a lane sampled at two temperatures: one row of its own per (lane, temperature)
        sampled, row_of = logits[key_lanes], {key: j for j, key in enumerate(keys)}
        temperatures = torch.tensor([t for _, t in keys], device=logits.device)[:, None]
    k = min(_SHORTLIST, sampled.shape[-1])
    top_logits, top_ids = sampled.topk(k, dim=-1)  # sorted, descending; temperature keeps the order
    log_z = _log_normaliser(sampled, temperatures)
    top_probs = (top_logits / temperatures - log_z).exp()
    for r in rows:
        j = row_of[(lanes[r], requests[r].temperature)]
        top_p = requests[r].top_p
        if top_p >= 1.0:  # no nucleus: a draw from the whole distribution, no sort
            probs = (sampled[j] / temperatures[j] - log_z[j]).exp()
            picked[r] = int(torch.multinomial(probs, 1, generator=generators[r]))
            continue
        candidates, ids = top_probs[j], top_ids[j]
        if float(candidates.sum()) < top_p:  # the nucleus reaches past the shortlist
            candidates, ids = (sampled[j] / temperatures[j] - log_z[j]).exp().sort(descending=True)
        keep = candidates.cumsum(-1) - candidates < top_p
        nucleus = candidates * keep
        picked[r] = int(ids[torch.multinomial(nucleus / nucleus.sum(), 1, generator=generators[r])])
    return picked


def _log_normaliser(logits, temperatures, block: int = 4):
    """log Σ exp(logits / T) of every row, the exact normaliser of its distribution at its
    temperature, computed `block` rows at a time in one scratch buffer.

    One call over [64 × 262k] float32 logits makes several passes over 64 MB (divide, max,
    subtract, exp, sum), each from main memory: 61 ms here. Four rows (4 MB) stay in the CPU's
    cache between passes: 12 ms, the same values. The passes run in place in a scratch block
    allocated once per call: `torch.logsumexp` on a block allocated its temporaries each time, 16
    fresh 4 MB blocks a step, which the tuned allocator (s2distill/allocator.py) maps and faults in.
    """
    import torch

    rows = logits.shape[0]
    out = torch.empty(rows, 1, device=logits.device)
    scratch = torch.empty(min(block, rows), logits.shape[-1], device=logits.device)
    for i in range(0, rows, block):
        part = scratch[: min(block, rows - i)]
        torch.div(logits[i : i + block], temperatures[i : i + block], out=part)
        top = part.amax(dim=-1, keepdim=True)
        part.sub_(top).exp_()
        out[i : i + block] = part.sum(dim=-1, keepdim=True).log_().add_(top)
    return out


def _fingerprint(adapter: Path) -> str:
    """Identify an adapter by its weights, so a retrained adapter never hits stale cache rows."""
    digest = hashlib.sha256()
    for file in sorted(adapter.glob("*.safetensors")) + sorted(adapter.glob("*.json")):
        digest.update(file.read_bytes())
    return f"{adapter.resolve()}#{digest.hexdigest()[:12]}"
