"""A tiny randomly initialised transformers model with a byte-level tokenizer, built in code.

It downloads nothing and trains in seconds, so tests (and the smoke recipe) exercise the real
SFT, adapter-saving and HF-backend code paths without the embedded model's minute of conversion.
Its outputs are noise until trained; it is a plumbing check, not a model.
"""

from __future__ import annotations

from pathlib import Path

from s2distill.paths import cache_home
from s2distill.artifacts import folder_written_whole

TINY_NAME = "tiny-llama-bytes"


def tiny_model_dir(seed: int = 0) -> Path:
    """Build (once) and return the folder of the tiny model."""
    target = cache_home() / "models" / f"{TINY_NAME}-{seed}"
    if (target / "model.safetensors").exists():
        return target
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials + sorted(byte_chars))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    with folder_written_whole(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return target
