"""Soft labels: the student learns a teacher's next-token distribution over its target's tokens.

The `soft_labels` variant (s2distill/distill/soft.py says what the teacher reads) trains on
`distilled`'s pairs with the same answer-only masking, LoRA and per-character answer tokens as the
hard-label student; only the loss differs. Three pieces, each here:

1. `student_tokens`: a pair tokenised exactly as TRL's SFTTrainer tokenises it (prompt, then prompt
   and completion with the EOS, the completion where the two diverge; pre-tokenised as
   `answer_tokens: characters` writes it), so the teacher scores the very tokens the student is
   trained on, and the hard and soft students see the same sequences (tested against TRL).
2. `teacher_distributions`: one forward pass per pair of the teacher model over its own prompt (the
   question and the System 2 trace) followed by the student's completion tokens; the top-k
   log-probabilities at each completion token are kept, computed once per example and stored as
   the stage's artifact, never recomputed per epoch. Memory is bounded by k (the default 20 of
   Gemma's 262,144 tokens), and only the positions that predict a completion token are projected.
3. `soft_label_loss`: the forward KL from the teacher's top-k (with the rest of its mass as one tail
   bucket) to the student's probabilities of those same tokens, by TRL's own top-k distillation
   functions (`trl.experimental.sdft.loss_utils.add_tail_bucket` and `compute_divergence`, which
   TRL's self-distillation trainers use), optionally mixed with the hard targets' cross-entropy.

Why not TRL's trainers whole: the stable `trl.DistillationTrainer` gives its teacher the student's
own input ids and generates on-policy, so the teacher cannot read a context the student does not;
`trl.experimental.sdft.SDFTTrainer` can (`teacher_prompt_template`), but generates a rollout and
runs the teacher at every step, which on a 2-core CPU costs more than the whole hard-label
training. Off-policy on the curated targets with the teacher's top-k cached is what fits here; the
trainer is TRL's SFTTrainer (data, masking, LoRA, checkpoints) with the loss above.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from s2distill.training.answer_logits import answer_logits
from s2distill.training.trl_pairs import TEACHER_COLUMNS, trl_pair, trl_prompt

# Padding of the teacher's columns past a row's last completion token: finite, so that no NaN
# reaches a masked position (exp(-1e4) is 0 in float32)
PAD_LOGPROB = -1e4


def student_tokens(pair: dict, tokenizer, answer_tokens: str = "text") -> dict:
    """`{"input_ids", "completion_mask"}` of a training pair as TRL's SFTTrainer tokenises it
    (`trl_pair` first: a chat pair without a template is rendered plain, `characters` tokenises the
    answer one character per token)."""
    from trl.data_utils import common_prefix_length

    pair = trl_pair(pair, tokenizer, answer_tokens)
    if "input_ids" in pair:
        return {"input_ids": list(pair["input_ids"]), "completion_mask": list(pair["completion_mask"])}
    prompt, completion = pair["prompt"], pair["completion"]
    if isinstance(prompt, list):  # conversational: the model's chat template, as TRL renders it
        prompt_ids = _chat_ids(tokenizer, prompt, add_generation_prompt=True)
        whole = _chat_ids(tokenizer, prompt + completion)
    else:  # TRL appends the EOS to a plain completion that lacks it
        eos = tokenizer.eos_token or ""
        prompt_ids = tokenizer(prompt)["input_ids"]
        whole = tokenizer(prompt + (completion if completion.endswith(eos) else completion + eos))["input_ids"]
    start = common_prefix_length(prompt_ids, whole)
    return {"input_ids": whole, "completion_mask": [0] * start + [1] * (len(whole) - start)}


def _chat_ids(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True,
                                              return_dict=True)["input_ids"])


def prompt_ids(prompt: str | list[dict], tokenizer) -> list[int]:
    """A teacher prompt's tokens, as `student_tokens` tokenises a student prompt."""
    prompt = trl_prompt(prompt, tokenizer)
    if isinstance(prompt, list):
        return _chat_ids(tokenizer, prompt, add_generation_prompt=True)
    return tokenizer(prompt)["input_ids"]


def completion_ids(tokens: dict) -> list[int]:
    """The completion's tokens of `student_tokens`' output."""
    return [t for t, m in zip(tokens["input_ids"], tokens["completion_mask"], strict=True) if m]


def teacher_distributions(model, sequences: Sequence[tuple[list[int], int]], *, top_k: int, temperature: float,
                          batch_size: int = 16, advance: Callable[[int], None] | None = None) -> list[dict]:
    """For each (token ids, completion length): the teacher's top-k token ids and log-probabilities
    (at `temperature`) at each of the last `completion length` tokens, the log-probability it gives
    the token that is there, and whether that token is its most likely one.

    Batches of similar length, left-padded with explicit position ids, so that every row's
    completion ends at the batch's last column: only the last (longest completion) positions are
    projected onto the vocabulary, not the union of every row's (Gemma's head is 262k wide)."""
    import torch

    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]))
    out: list[dict | None] = [None] * len(sequences)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(sequences[i][0]) for i in chunk)
            longest = max(sequences[i][1] for i in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                seq = sequences[i][0]
                ids[row, width - len(seq):] = torch.tensor(seq)
                mask[row, width - len(seq):] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                           logits_to_keep=torch.arange(width - longest - 1, width - 1), use_cache=False).logits
            logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)
            for row, i in enumerate(chunk):
                seq, length = sequences[i]
                here = logprobs[row, longest - length:]  # (length, vocabulary): this row's completion
                top = torch.topk(here, k=min(top_k, here.shape[-1]), dim=-1)
                targets = torch.tensor(seq[len(seq) - length:])
                target_lp = here.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                out[i] = {"teacher_top_ids": top.indices.tolist(),
                          "teacher_top_logprobs": [[round(v, 5) for v in r] for r in top.values.tolist()],
                          "target_logprob": [round(v, 5) for v in target_lp.tolist()],
                          "teacher_agrees": (top.indices[:, 0] == targets).tolist()}
            if advance is not None:
                advance(len(chunk))
    return out  # type: ignore[return-value]


def soft_label_loss(model, inputs, *, temperature: float = 1.0, hard_weight: float = 0.0, num_items_in_batch=None):
    """Mean over the label tokens of (1 - hard_weight) * KL(teacher || student) over the teacher's
    top-k plus a tail bucket, + hard_weight * the label's cross-entropy. The j-th label token of a
    row is matched with the j-th entry of its teacher columns (TRL keeps a completion's tokens in
    order; truncation only cuts its end). Returns (loss, outputs), as `answer_positions_loss`."""
    import torch
    import torch.nn.functional as F

    add_tail_bucket, compute_divergence = _trl_top_k_divergence()
    logits, targets, outputs = answer_logits(model, inputs)  # the hard loss's positions, as it projects them
    valid = targets != -100
    top_ids, top_logprobs = inputs["teacher_top_ids"], inputs["teacher_top_logprobs"].float()
    k = top_ids.shape[-1]
    entry = (valid.long().cumsum(dim=1) - 1).clamp(min=0, max=top_ids.shape[1] - 1)  # j-th label token of its row
    index = entry.unsqueeze(-1).expand(-1, -1, k)
    teacher_ids = top_ids.gather(1, index)
    teacher = top_logprobs.gather(1, index)
    student = torch.log_softmax(logits / temperature, dim=-1).gather(-1, teacher_ids)
    per_token = compute_divergence(add_tail_bucket(student), add_tail_bucket(teacher), 0.0)  # forward KL
    if hard_weight > 0:
        hard = F.cross_entropy(logits.transpose(1, 2), targets.masked_fill(~valid, 0), reduction="none")
        per_token = (1 - hard_weight) * per_token + hard_weight * hard
    total = per_token.masked_fill(~valid, 0.0).sum()
    count = num_items_in_batch if num_items_in_batch is not None else valid.sum()
    return total / torch.as_tensor(count, device=total.device).clamp(min=1), outputs


def _trl_top_k_divergence():
    """TRL's top-k distillation functions (`add_tail_bucket`, `compute_divergence`), imported without
    the warning every `trl.experimental` import gives: that these functions may move is why the
    tests compare the loss with a KL computed by hand."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*trl.experimental.*")
        from trl.experimental.sdft.loss_utils import add_tail_bucket, compute_divergence
    return add_tail_bucket, compute_divergence


class SoftTargetsCollator:
    """TRL's collator for the tokens, and the teacher's columns padded to (batch, longest, k)."""

    def __init__(self, base):
        self.base = base

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        batch = self.base([{k: v for k, v in e.items() if k not in TEACHER_COLUMNS} for e in examples])
        longest = max(len(e["teacher_top_ids"]) for e in examples)
        k = len(examples[0]["teacher_top_ids"][0])
        ids = torch.zeros((len(examples), longest, k), dtype=torch.long)
        logprobs = torch.full((len(examples), longest, k), PAD_LOGPROB)
        for row, e in enumerate(examples):
            n = len(e["teacher_top_ids"])
            ids[row, :n] = torch.tensor(e["teacher_top_ids"], dtype=torch.long)
            logprobs[row, :n] = torch.tensor(e["teacher_top_logprobs"], dtype=torch.float32)
        batch["teacher_top_ids"], batch["teacher_top_logprobs"] = ids, logprobs
        return batch
