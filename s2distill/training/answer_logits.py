"""The logits a training loss reads: only at the positions that predict an answer token. Shared by
the hard-label loss (training/sft.py) and the soft-label loss (training/soft_labels.py)."""

from __future__ import annotations


def answer_logits(model, inputs):
    """(logits, targets, outputs) at the positions that predict a label token: float logits of shape
    (batch, positions, vocabulary) and the labels they predict (-100 where a row has none there).

    The positions are the union over the batch of positions whose next token is a label; the model
    returns logits for those alone (`logits_to_keep` as an index tensor), not for every prompt token.
    """
    next_labels = inputs["labels"][:, 1:]
    positions = (next_labels != -100).any(dim=0).nonzero().squeeze(-1)
    outputs = model(
        input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
        logits_to_keep=positions, use_cache=False,
    )
    return outputs.logits.float(), next_labels[:, positions], outputs
