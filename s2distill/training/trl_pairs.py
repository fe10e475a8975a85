"""A training pair as TRL reads it: conversational for a chat student with a template, plain text
for one without, or tokenised already with the answer one token per character. One function,
read by training (sft.py) and by its guard (guard.py) alike, so both count the same tokens."""

from __future__ import annotations

# What a soft-label pair adds to its tokens (training/soft_labels.py: the collator pads them, the loss reads them)
TEACHER_COLUMNS = ("teacher_top_ids", "teacher_top_logprobs")
# A pair tokenised already, as TRL reads it: its tokens, and a soft-label pair's teacher columns
TOKENISED_COLUMNS = ("input_ids", "completion_mask", *TEACHER_COLUMNS)


def trl_prompt(prompt: str | list[dict], tokenizer) -> str | list[dict]:
    """A prompt as TRL gets it: chat messages stay messages for a tokenizer with a chat template, and
    become the HF backend's plain rendering for one without (`lm.base.render_messages`)."""
    if isinstance(prompt, list) and not getattr(tokenizer, "chat_template", None):
        from s2distill.lm.base import render_messages

        return render_messages([(m["role"], m["content"]) for m in prompt])
    return prompt


def trl_pair(pair: dict, tokenizer, answer_tokens: str = "text") -> dict:
    """A pair's prompt and completion as TRL gets them. A conversational pair (a chat student's) stays
    conversational when the tokenizer has a chat template; without one it becomes the plain text the
    HF backend asks such a model with (`lm.base.render_messages`, "user: ...\nassistant:"), the
    answer after a space, so the student is trained on the prompt it is evaluated on.
    `answer_tokens="characters"` returns it tokenised instead, the answer one token per character
    (training/answer_tokens.py). A soft-label pair is tokenised already, with its teacher's columns
    (training/soft_labels.py): those are what TRL gets."""
    if "input_ids" in pair:
        return {k: pair[k] for k in TOKENISED_COLUMNS if k in pair}
    prompt, completion = pair["prompt"], pair["completion"]
    if isinstance(prompt, list) and not getattr(tokenizer, "chat_template", None):
        prompt = trl_prompt(prompt, tokenizer)
        completion = " " + "".join(m["content"] for m in completion)
    if answer_tokens == "characters":
        from s2distill.training.answer_tokens import character_pair

        return character_pair(prompt, completion, tokenizer)
    return {"prompt": prompt, "completion": completion}
