"""`train.answer_tokens: characters`: the student's answer as one token per character.

A tokenizer merges short letter strings into one token: Gemma's writes the last-letter answer
" nm" as the single token `▁nm`. A student trained on that target has to learn, for each of the
~700 letter-pair tokens, which two letters it spells; the same student trained on `▁n`, `m` learns
one letter at a time. On the quickstart's curated pool (900 inputs, LoRA, 4 epochs) the 2-word score
rose from 62.0% to 70.5% (n=200; README, learning curve). The model then *generates* the character
tokens itself, so nothing changes at inference, in `predict` or in an exported model: decoding the
tokens gives the same text.

Only the answer is split; the prompt is tokenised as TRL does it (with the tokenizer's special
tokens). A plain pair's answer ends with the end-of-sequence token, as TRL appends it; a chat pair's
with what the chat template writes after the assistant's message (e.g. `<end_of_turn>`).
"""

from __future__ import annotations

from s2distill.errors import TrainingError


def character_ids(text: str, tokenizer) -> list[int]:
    """`text` tokenised one character at a time, each whitespace run joined to the character after
    it (" n" is one token in SentencePiece and byte-level vocabularies alike). Raises when the
    tokens do not decode back to `text` (a tokenizer that rewrites characters)."""
    chunks, pending = [], ""
    for char in text:
        if char in " \t":
            pending += char
            continue
        chunks.append(pending + char)
        pending = ""
    if pending:
        chunks.append(pending)
    ids = [token for chunk in chunks for token in tokenizer(chunk, add_special_tokens=False)["input_ids"]]
    if tokenizer.decode(ids) != text:
        raise TrainingError(f"train.answer_tokens=characters: this tokenizer does not spell {text!r} back "
                            f"character by character (it decodes to {tokenizer.decode(ids)!r}); use answer_tokens=text")
    return ids


def character_pair(prompt, completion, tokenizer) -> dict:
    """TRL's pre-tokenised form of one pair (`input_ids` and `completion_mask`: TRL then skips its
    own tokenisation), the completion one token per character. `prompt`/`completion` are strings, or
    message lists rendered through the tokenizer's chat template."""
    if isinstance(prompt, list):
        prompt_text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        whole = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
        answer = "".join(message["content"] for message in completion)
        after = whole[len(prompt_text):]
        if not whole.startswith(prompt_text) or not after.startswith(answer):
            raise TrainingError("train.answer_tokens=characters: this chat template does not write the answer "
                                "right after the prompt; use answer_tokens=text")
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        answer_ids = character_ids(answer, tokenizer) + tokenizer(after[len(answer):], add_special_tokens=False)["input_ids"]
    else:
        prompt_ids = tokenizer(prompt)["input_ids"]
        answer_ids = character_ids(completion, tokenizer) + [tokenizer.eos_token_id]
    return {"input_ids": prompt_ids + answer_ids, "completion_mask": [0] * len(prompt_ids) + [1] * len(answer_ids)}
