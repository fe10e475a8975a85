"""Answer-only SFT through TRL: the loss sees answer tokens only; trained weights load as an LM."""

from __future__ import annotations

from s2distill.config.recipe import TrainConfig
from s2distill.lm import build_lm
from s2distill.lm.configs import TinyModel
from s2distill.lm.tiny import tiny_model_dir
from s2distill.training.sft import build_trainer, train_student
from s2distill.types import Request

PAIRS = [
    {"prompt": "Q: Take the last letters of the words in \"Ada Bob\" and concatenate them.\nA:", "completion": " ab\n"},
    {"prompt": "Q: Take the last letters of the words in \"Eve Tom\" and concatenate them.\nA:", "completion": " em\n"},
]


def test_sft_labels_mask_every_prompt_token(tmp_path):
    trainer = build_trainer(PAIRS, tiny_model_dir(), tmp_path, TrainConfig(epochs=1, batch_size=2))
    tokenizer = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for row, pair in enumerate(PAIRS):
        prompt_len = len(tokenizer(pair["prompt"]).input_ids)
        labels, ids = batch["labels"][row].tolist(), batch["input_ids"][row].tolist()
        assert all(label == -100 for label in labels[:prompt_len])
        answer = [(i, label) for i, label in zip(ids[prompt_len:], labels[prompt_len:]) if label != -100]
        assert [i for i, label in answer] == [label for i, label in answer]  # answer tokens are learned
        learned = tokenizer.decode([label for _, label in answer])
        assert learned.startswith(pair["completion"])  # the answer (then end-of-sequence), nothing of the prompt


def test_trained_adapter_is_saved_and_loads_as_an_lm(tmp_path):
    weights = train_student(PAIRS * 4, tiny_model_dir(), tmp_path, TrainConfig(epochs=1, batch_size=4, lora_r=2, lora_alpha=4))
    assert (weights / "adapter_config.json").exists()
    assert not (tmp_path / "checkpoints").exists()
    base = build_lm(TinyModel())
    tuned = build_lm(TinyModel(), adapter=weights)
    assert tuned.name != base.name  # the cache never confuses the two
    [[completion]] = tuned.generate([Request(prompt=PAIRS[0]["prompt"], temperature=0.0, max_tokens=4)])
    assert completion.usage.completion_tokens >= 1 and completion.usage.prompt_tokens > 10


def test_answer_positions_loss_equals_the_full_masked_loss(tmp_path):
    import torch

    from s2distill.training.sft import answer_positions_loss

    trainer = build_trainer(PAIRS, tiny_model_dir(), tmp_path, TrainConfig(epochs=1, batch_size=2))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    model = trainer.model
    loss, _ = answer_positions_loss(model, batch)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    reference = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1), ignore_index=-100
    )
    assert torch.allclose(loss, reference, atol=1e-5), (loss, reference)


def test_full_fine_tuning_saves_a_whole_model_that_loads_as_an_lm(tmp_path):
    weights = train_student(PAIRS * 4, tiny_model_dir(), tmp_path, TrainConfig(mode="full", epochs=1, batch_size=4))
    assert (weights / "config.json").exists() and (weights / "model.safetensors").exists()
    tuned = build_lm(TinyModel(), adapter=weights)
    assert str(weights) in tuned.name
    [[completion]] = tuned.generate([Request(prompt=PAIRS[0]["prompt"], temperature=0.0, max_tokens=3)])
    assert completion.usage.completion_tokens >= 1


def test_training_changes_the_adapter_and_lowers_the_loss(tmp_path):
    import json

    from safetensors.torch import load_file

    pairs = PAIRS * 8
    weights = train_student(pairs, tiny_model_dir(), tmp_path, TrainConfig(epochs=6, batch_size=4, lora_r=4, lora_alpha=8,
                                                                           learning_rate=1e-2, precision="float32"))
    adapter = load_file(str(weights / "adapter_model.safetensors"))
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and any(t.abs().max() > 0 for t in lora_b)  # LoRA's B starts at zero: training moved it
    steps = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    losses = [s["loss"] for s in steps if "loss" in s]
    assert len(losses) >= 8 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses  # measured: 5.4 -> 4.5


def test_dropout_and_warmup_reach_the_model_and_trl(tmp_path):
    """`train.dropout` sets the model config's dropout fields (Yu et al. 2024 A.2: "dropout 0.1");
    `train.warmup_steps` is TRL's warmup."""
    config = TrainConfig(preset="yu2024", epochs=1, batch_size=2)
    trainer = build_trainer(PAIRS, tiny_model_dir(), tmp_path, config)
    model_config = trainer.model.config
    dropouts = {name: getattr(model_config, name) for name in ("attention_dropout", "hidden_dropout", "dropout")
                if hasattr(model_config, name)}
    assert dropouts and all(value == 0.1 for value in dropouts.values())
    assert trainer.args.warmup_steps == 1 and trainer.args.learning_rate == 5.5e-6
    assert build_trainer(PAIRS, tiny_model_dir(), tmp_path, TrainConfig(epochs=1)).model.config.attention_dropout == 0.0
