"""`train.answer_tokens: characters`: the student learns its answer one token per character, where
the tokenizer would merge letters into one token, and TRL trains on exactly those tokens."""

from __future__ import annotations

import pytest

from s2distill.training.answer_tokens import character_ids, character_pair
from s2distill.config.recipe import TrainConfig
from s2distill.errors import TrainingError
from s2distill.lm.tiny import tiny_model_dir
from s2distill.training.sft import build_trainer

PROMPT = 'Q: Take the last letters of the words in "Ron Shyam" and concatenate them.\nA:'


@pytest.fixture(scope="module")
def merging_tokenizer():
    """A byte-level BPE tokenizer that, like Gemma's, writes " nm" as one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    merged = ["Ġn", "Ġnm"]
    vocab = {tok: i for i, tok in enumerate(["<bos>", "<eos>"] + sorted(pre_tokenizers.ByteLevel.alphabet()) + merged)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[("Ġ", "n"), ("Ġn", "m")]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>")


def test_an_answer_the_tokenizer_merges_is_split_into_characters(merging_tokenizer):
    tok = merging_tokenizer
    assert tok.convert_ids_to_tokens(tok(" nm\n", add_special_tokens=False)["input_ids"]) == ["Ġnm", "Ċ"]
    ids = character_ids(" nm\n", tok)
    assert tok.convert_ids_to_tokens(ids) == ["Ġn", "m", "Ċ"]  # the space stays with the letter after it
    assert tok.decode(ids) == " nm\n"


def test_a_character_pair_masks_the_prompt_and_ends_the_answer_with_eos(merging_tokenizer):
    tok = merging_tokenizer
    row = character_pair(PROMPT, " nm\n", tok)
    prompt_ids = tok(PROMPT)["input_ids"]
    assert row["input_ids"][: len(prompt_ids)] == prompt_ids
    answer = [i for i, learned in zip(row["input_ids"], row["completion_mask"]) if learned]
    assert row["completion_mask"] == [0] * len(prompt_ids) + [1] * 4
    assert tok.convert_ids_to_tokens(answer) == ["Ġn", "m", "Ċ", "<eos>"]


def test_a_chat_pair_splits_the_assistant_message_and_keeps_the_template_end(merging_tokenizer):
    tok = merging_tokenizer
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% if m['role'] == 'assistant' %}"
                         "{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    try:
        prompt = [{"role": "user", "content": "Ron Shyam"}]
        row = character_pair(prompt, [{"role": "assistant", "content": "nm"}], tok)
        answer = [i for i, learned in zip(row["input_ids"], row["completion_mask"]) if learned]
        assert tok.convert_ids_to_tokens(answer) == ["n", "m", "<eos>"]
        assert tok.decode(row["input_ids"]) == "<user>Ron Shyam<assistant>nm<eos>"
    finally:
        tok.chat_template = None


def test_a_tokenizer_that_cannot_spell_the_answer_back_is_a_clear_error():
    class Lossy:  # a tokenizer that lower-cases what it reads
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [ord(c) for c in text.lower()]}

        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    with pytest.raises(TrainingError, match="answer_tokens=text"):
        character_ids(" NM", Lossy())


def test_trl_trains_on_the_character_tokens(tmp_path):
    pairs = [{"prompt": PROMPT, "completion": " nm\n"}, {"prompt": PROMPT.replace("Ron", "Ada"), "completion": " am\n"}]
    trainer = build_trainer(pairs, tiny_model_dir(), tmp_path, TrainConfig(epochs=1, batch_size=2, answer_tokens="characters"))
    tokenizer = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for row, pair in enumerate(pairs):
        expected = character_pair(pair["prompt"], pair["completion"], tokenizer)
        labels = [label for label in batch["labels"][row].tolist() if label != -100]
        assert labels == [i for i, learned in zip(expected["input_ids"], expected["completion_mask"]) if learned]
        assert tokenizer.decode(labels) == pair["completion"] + tokenizer.eos_token
