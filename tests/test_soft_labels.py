"""Soft labels (issue 29): the `soft_labels` variant trains on `distilled`'s pairs through a teacher's
next-token distribution given the kept System 2 trace (context distillation).

End to end on the smoke recipe (the fake PAL teacher, the tiny student trained for real): the
teacher reads the trace and the student the bare question (asserted on the trainer's batches), no
label is read, the stage is fingerprinted like every other; and on the loss itself: it is TRL's
top-k KL, exact when k is the whole vocabulary, the cross-entropy at hard_weight 1, and it falls
when a tiny student learns a tiny teacher's distributions."""

from __future__ import annotations

import inspect
import json
import math

import pytest
import yaml

from s2distill.artifacts import read_json, read_jsonl
from s2distill.config.recipe import RecipeError, TrainConfig, validate_recipe
from s2distill.distill.soft import privileged_context
from s2distill.lm.tiny import tiny_model_dir
from s2distill.pipeline import Pipeline
from s2distill.tasks.last_letters import LastLetters
from s2distill.training.sft import build_trainer, train_student
from s2distill.training.soft_labels import (
    completion_ids,
    prompt_ids,
    soft_label_loss,
    student_tokens,
    teacher_distributions,
)
from s2distill.types import Trace

SOFT_SET = "distill/soft_labels/stage1-answer_only.soft.jsonl"
PAIRS = [
    {"prompt": "Q: Take the last letters of the words in \"Ada Bob\" and concatenate them.\nA:", "completion": " ab\n"},
    {"prompt": "Q: Take the last letters of the words in \"Eve Tom\" and concatenate them.\nA:", "completion": " em\n"},
    {"prompt": "Q: Take the last letters of the words in \"Ann Lee\" and concatenate them.\nA:", "completion": " ne\n"},
]


@pytest.fixture
def smoke_soft(recipes_dir):
    data = yaml.safe_load((recipes_dir / "smoke.yaml").read_text())
    data["evaluate"] = {"systems": ["distilled"]}
    data["baselines"] = ["soft_labels"]
    return data


def soft_pairs(tokenizer, pairs, teacher, *, top_k: int, context: str = "", answer_tokens: str = "text") -> list[dict]:
    """Pairs with a teacher's distributions, as the soft stage makes them (the teacher reading
    `context` after each prompt's question)."""
    rows, sequences = [], []
    for pair in pairs:
        tokens = student_tokens(pair, tokenizer, answer_tokens)
        target = completion_ids(tokens)
        teacher_prompt = pair["prompt"].replace("\nA:", f"\n\n{context}\nA:") if context else pair["prompt"]
        sequences.append((prompt_ids(teacher_prompt, tokenizer) + target, len(target)))
        rows.append({**pair, **tokens})
    for row, found in zip(rows, teacher_distributions(teacher, sequences, top_k=top_k, temperature=1.0), strict=True):
        row.update(found)
    return rows


def test_student_tokens_are_the_tokens_trl_trains_on(tmp_path):
    """The teacher scores exactly the tokens the hard-label student learns: TRL's own tokenisation
    of a plain pair, a per-character one, and a chat pair for a model without a template."""
    chat = {"prompt": [{"role": "user", "content": "Take the last letters of \"Ada Bob\"."}],
            "completion": [{"role": "assistant", "content": "ab"}]}
    for answer_tokens, pairs in (("text", PAIRS), ("characters", PAIRS), ("text", [chat, chat])):
        trainer = build_trainer(pairs, tiny_model_dir(), tmp_path / answer_tokens,
                                TrainConfig(epochs=1, batch_size=2, answer_tokens=answer_tokens))
        for i, pair in enumerate(pairs):
            ours = student_tokens(pair, trainer.processing_class, answer_tokens)
            theirs = trainer.train_dataset[i]
            assert ours["input_ids"] == theirs["input_ids"]
            assert [m == 1 for m in ours["completion_mask"]] == [label != -100 for label in theirs["labels"]]


def test_soft_loss_is_the_exact_kl_with_every_token_and_the_cross_entropy_at_hard_weight_one(tmp_path):
    import torch

    from s2distill.training.sft import answer_positions_loss

    teacher = _tiny(seed=1)
    tokenizer = _tokenizer()
    vocabulary = len(tokenizer)
    rows = soft_pairs(tokenizer, PAIRS, teacher, top_k=vocabulary)
    trainer = build_trainer(rows, tiny_model_dir(), tmp_path, TrainConfig(epochs=1, batch_size=3),
                            soft_loss={"temperature": 1.0, "hard_weight": 0.0})
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    model = trainer.model
    loss, _ = soft_label_loss(model, batch)
    # by hand, over the whole vocabulary: KL(teacher || student) at every label token, averaged
    with torch.no_grad():
        student_logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    expected, count = 0.0, 0
    for row, pair in enumerate(rows):
        ids = pair["input_ids"]
        start = len(ids) - len(completion_ids(pair))
        with torch.no_grad():
            t_logits = teacher(input_ids=torch.tensor([ids])).logits.float()[0]
        for position in range(start - 1, len(ids) - 1):
            p = torch.log_softmax(t_logits[position], -1)
            q = torch.log_softmax(student_logits[row, position], -1)
            expected += float((p.exp() * (p - q)).sum())
            count += 1
    assert math.isclose(float(loss), expected / count, rel_tol=1e-3, abs_tol=1e-4), (float(loss), expected / count)
    hard, _ = answer_positions_loss(model, batch)
    at_one, _ = soft_label_loss(model, batch, hard_weight=1.0)
    assert torch.allclose(at_one, hard, atol=1e-5)


def test_a_tiny_student_learns_a_tiny_teachers_distributions(tmp_path):
    """The loss falls: the untrained student (seed 0) against another tiny model (seed 1) as teacher."""
    tokenizer = _tokenizer()
    rows = soft_pairs(tokenizer, PAIRS * 4, _tiny(seed=1), top_k=20)
    config = TrainConfig(epochs=4, batch_size=4, learning_rate=1e-2, lora_r=4, lora_alpha=8, precision="float32")
    train_student(rows, tiny_model_dir(), tmp_path, config, soft_loss={"temperature": 1.0, "hard_weight": 0.0})
    losses = [entry["loss"] for entry in read_jsonl(tmp_path / "train_log.jsonl") if "loss" in entry]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_soft_labels_train_on_the_distilled_pairs_with_the_teacher_reading_the_trace(smoke_soft, tmp_path,
                                                                                      monkeypatch):
    labels_read: list[set[str]] = []
    original = LastLetters.labeled

    def labeled(self, split):
        labels_read.append({frame.function for frame in inspect.stack()[1:40]})
        return original(self, split)

    monkeypatch.setattr(LastLetters, "labeled", labeled)
    Pipeline(validate_recipe(smoke_soft), tmp_path, progress=False).run()
    assert not any({"soft_stage", "teacher_prompt"} & stack for stack in labels_read)  # the teacher reads no label

    rows = read_jsonl(tmp_path / SOFT_SET)
    hard = read_jsonl(tmp_path / "distill/distilled/stage1-answer_only.jsonl")
    assert [(r["id"], r["prompt"], r["completion"]) for r in rows] == [(p["id"], p["prompt"], p["completion"]) for p in hard]
    traces = {(t["example_id"], t["teacher"], t["sample"]): Trace.from_dict(t) for t in read_jsonl(tmp_path / "samples/pal.jsonl")}
    for row in rows:
        context = privileged_context(traces[(row["id"], row["teacher"], row["sample"])])
        assert "print(" in context and "Output: " in context  # the PAL program and what it printed
        question_end = row["prompt"].rindex("\nA:")
        assert row["teacher_prompt"] == row["prompt"][:question_end] + "\n\n" + context + row["prompt"][question_end:]
        assert len(row["teacher_top_ids"]) == len(completion_ids(row)) == len(row["target_logprob"])

    # the trainer's batches: the student's bare prompt and target, the teacher's columns beside them
    trainer = build_trainer(rows, tiny_model_dir(), tmp_path / "check", TrainConfig(epochs=1, batch_size=4),
                            soft_loss={"temperature": 1.0, "hard_weight": 0.0})
    tokenizer = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    for i in range(len(batch["input_ids"])):
        text = tokenizer.decode([t for t, m in zip(batch["input_ids"][i], batch["attention_mask"][i]) if m])
        row = next(r for r in rows if tokenizer.decode(r["input_ids"]) == text)
        assert "print(" not in text and "Output:" not in text and text.startswith(row["prompt"])
        answer = len(row["teacher_top_ids"])
        assert batch["teacher_top_ids"][i, :answer].tolist() == row["teacher_top_ids"]
        learned = [t for t in batch["labels"][i].tolist() if t != -100]
        assert learned == completion_ids(row)

    report = read_json(tmp_path / "report.json")
    [soft_row] = [r for r in report["rows"] if r["system"] == "soft_labels"]
    assert soft_row["control"] == "soft labels (context distillation)"
    assert soft_row["train_seconds"] > soft_row["soft_targets"]["teacher_seconds"] > 0
    assert soft_row["soft_targets"]["tokens"] == sum(len(r["teacher_top_ids"]) for r in rows)
    assert "soft_labels — soft labels (context distillation)" in (tmp_path / "report.md").read_text()


def test_soft_settings_redo_the_soft_student_alone(smoke_soft, tmp_path):
    Pipeline(validate_recipe(smoke_soft), tmp_path, progress=False).run()
    first = read_jsonl(tmp_path / SOFT_SET)
    smoke_soft["distill"] = {"soft": {"top_k": 5}}
    Pipeline(validate_recipe(smoke_soft), tmp_path, progress=False).run()
    ran = {s["name"] for s in read_json(tmp_path / "report.json")["stages"]["ran"]}
    assert ran == {"soft:soft_labels/stage1-answer_only", "train:soft_labels/stage1", "eval:soft_labels-stage1"}
    again = read_jsonl(tmp_path / SOFT_SET)
    assert {len(ids) for r in again for ids in r["teacher_top_ids"]} == {5}
    assert [r["teacher_top_ids"][0][:5] for r in again] == [r["teacher_top_ids"][0][:5] for r in first]
    smoke_soft["distill"] = {"soft": {"top_k": 5, "hard_weight": 0.5}}  # the loss alone: training, not the teacher
    Pipeline(validate_recipe(smoke_soft), tmp_path, progress=False).run()
    ran = {s["name"] for s in read_json(tmp_path / "report.json")["stages"]["ran"]}
    assert ran == {"train:soft_labels/stage1", "eval:soft_labels-stage1"}


def test_a_remote_teacher_gives_no_logits(smoke_soft):
    smoke_soft["distill"] = {"soft": {"teacher_model": {"backend": "openai", "model": "m", "base_url": "http://x/v1"}}}
    with pytest.raises(RecipeError, match="local model"):
        validate_recipe(smoke_soft)


def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir())


def _tiny(seed: int):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(seed))
    return model.eval()


def test_teacher_distributions_match_a_plain_forward_pass():
    """Batched, right-padded and projected at the answer positions only, as one sequence alone."""
    import torch

    teacher, tokenizer = _tiny(seed=1), _tokenizer()
    texts = [p["prompt"] + p["completion"] for p in PAIRS] + ["Q: a much longer question than the others\nA: yes\n"]
    sequences = [(tokenizer(text)["input_ids"], n) for text, n in zip(texts, (3, 2, 4, 5), strict=True)]
    found = teacher_distributions(teacher, sequences, top_k=4, temperature=2.0, batch_size=3)  # left-padded rows
    for (ids, n), got in zip(sequences, found, strict=True):
        with torch.no_grad():
            logprobs = torch.log_softmax(teacher(input_ids=torch.tensor([ids])).logits[0].float() / 2.0, -1)
        top = torch.topk(logprobs[len(ids) - n - 1:len(ids) - 1], 4)
        assert got["teacher_top_ids"] == top.indices.tolist()
        for ours, theirs in zip(got["teacher_top_logprobs"], top.values.tolist(), strict=True):
            assert ours == pytest.approx(theirs, abs=1e-4)
        assert got["teacher_agrees"] == (top.indices[:, 0] == torch.tensor(ids[-n:])).tolist()
    assert json.dumps(found)  # stored as JSON rows
