"""Supervised fine-tuning of the student with TRL's SFTTrainer and PEFT (DESIGN principle 7).

The data is prompt–completion pairs, so TRL masks every prompt token out of the labels (its
`completion_only_loss`); a chat student's pairs are conversational (lists of messages), which TRL
renders with the model's chat template, the prompt with its generation prompt, so only the
assistant turn's tokens are labels (`trl_pair`: a model without a chat template gets the plain
rendering the HF backend asks it with). LoRA on every linear layer by default, or full
fine-tuning. An interrupted training resumes from its last complete epoch checkpoint; what a
failed one left half-written is removed, and a full disk is an `OSError(ENOSPC)` naming the folder.

One piece is ours: the loss. Answer-only targets are a few tokens after a long few-shot prompt,
and on a CPU the vocabulary projection dominates a step (Gemma 3 has 262k tokens). TRL's fused LM
head falls back to a torch loop over vocabulary tiles without Triton: 20.3 s a step here, against
3.7 s for projecting only the positions that predict answer tokens, on the same batch of 8
(benchmarks/train_step.py). The loss is the same masked token-mean cross-entropy (tested). The
soft_labels variant swaps that loss for a teacher's top-k distribution on the same positions
(training/soft_labels.py), the rest of the training unchanged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from s2distill.training.answer_logits import answer_logits
from s2distill.training.trl_pairs import trl_pair


def answer_positions_loss(model, inputs, num_items_in_batch=None):
    """Mean cross-entropy over label tokens, projecting only the positions that predict one (`answer_logits`)."""
    import torch
    import torch.nn.functional as F

    logits, targets, outputs = answer_logits(model, inputs)
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (targets != -100).sum()
    return total / torch.as_tensor(count, device=total.device).clamp(min=1), outputs


def _answer_only_trainer_class():
    from trl import SFTTrainer

    from s2distill.training.log import token_accuracy

    class AnswerOnlySFTTrainer(SFTTrainer):
        """SFTTrainer whose loss projects only answer-predicting positions (see the module docstring)."""

        def answer_loss(self, model, inputs, num_items_in_batch):
            """The loss and the model's outputs at the answer positions (a subclass changes the loss alone)."""
            return answer_positions_loss(model, inputs, num_items_in_batch)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = self.answer_loss(model, inputs, num_items_in_batch)
            processes = self.accelerator.num_processes
            if processes > 1 and self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # as Trainer.compute_loss: the count is every process's and DDP averages the gradients
                # over processes, so each process's loss is scaled back up (else the loss is 1/N)
                loss = loss * (processes // self.get_tp_size())
            if model.training:  # TRL's own loss logs token accuracy; ours does too (train_log.jsonl)
                self._metrics["train"]["mean_token_accuracy"].append(token_accuracy(outputs.logits.detach(), inputs["labels"]))
            return (loss, outputs) if return_outputs else loss

    return AnswerOnlySFTTrainer


def _soft_label_trainer_class(temperature: float, hard_weight: float):
    """The answer-only trainer with the soft-label loss (training/soft_labels.py), which keeps the
    teacher's columns in the batches (TRL's signature columns would drop them)."""
    from s2distill.training.soft_labels import TEACHER_COLUMNS, soft_label_loss

    class SoftLabelSFTTrainer(_answer_only_trainer_class()):
        """SFTTrainer on soft labels: the teacher's top-k distribution at each answer token."""

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            self._signature_columns = [*self._signature_columns, *TEACHER_COLUMNS]

        def answer_loss(self, model, inputs, num_items_in_batch):
            return soft_label_loss(model, inputs, temperature=temperature, hard_weight=hard_weight,
                                   num_items_in_batch=num_items_in_batch)

    return SoftLabelSFTTrainer


# A model config's dropout probabilities, by the names transformers' architectures give them
DROPOUT_FIELDS = ("attention_dropout", "hidden_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob",
                  "dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop")


def _dropout_settings(model_path: Path, config) -> dict:
    """`train.dropout` as the model config's own dropout fields (Yu et al. 2024, A.2: "dropout 0.1"),
    set on its text config where it has one: `from_pretrained`'s `config=` argument, or nothing when
    `train.dropout` is unset. A model whose config has no such field cannot honour it: an error."""
    if config.dropout is None:
        return {}
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(model_path)
    text_config = getattr(model_config, "text_config", None) or model_config
    fields = [name for name in DROPOUT_FIELDS if isinstance(getattr(text_config, name, None), int | float)]
    if not fields:
        raise ValueError(f"train.dropout: the model at {model_path} has no dropout setting in its config "
                         f"(looked for {', '.join(DROPOUT_FIELDS)})")
    for name in fields:
        setattr(text_config, name, config.dropout)
    return {"config": model_config}


def frozen_weights_dtype(config) -> str:
    """The dtype LoRA's frozen base weights are loaded in: bfloat16 when training computes in
    bfloat16 (`precision`) and `frozen_weights` is auto, else float32.

    Under bf16 autocast every matmul casts its float32 weight to bfloat16, and the copy is kept for
    the backward pass: LoRA freezes those weights, so holding them in bfloat16 from the start computes
    the same matmuls without the copies (the quickstart's training peak on the AVX-512 BF16 machine:
    docs/benchmarks.md). Norms and the residual stream then run in bfloat16, as the model was trained;
    the adapters stay float32 (PEFT upcasts them). Full fine-tuning keeps float32 master weights."""
    from s2distill.hardware import resolve_dtype

    wanted = config.mode == "lora" and config.frozen_weights == "auto"
    return "bfloat16" if wanted and resolve_dtype(config.precision) == "bfloat16" else "float32"


def build_trainer(pairs: Sequence[dict], model_path: Path, output_dir: Path, config, *, init_adapter: Path | None = None,
                  soft_loss: dict | None = None):
    """The TRL trainer for `pairs`; exposed so tests can inspect its tokenised data and labels.

    `init_adapter` continues training a LoRA adapter from an earlier curriculum stage (for full
    fine-tuning, pass the earlier stage's weights as `model_path` instead). `soft_loss`
    ({"temperature", "hard_weight"}): train on the pairs' teacher distributions (soft-label pairs,
    training/soft_labels.py) instead of their tokens alone."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig

    from s2distill.hardware import available_cores, resolve_dtype
    from s2distill.lm.weights import load_causal_lm

    # Several processes on one machine share its cores (torchrun's LOCAL_WORLD_SIZE: processes on this node)
    torch.set_num_threads(max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    bf16 = resolve_dtype(config.precision) == "bfloat16"
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    frozen = torch.bfloat16 if frozen_weights_dtype(config) == "bfloat16" else torch.float32
    model = load_causal_lm(model_path, frozen, **_dropout_settings(model_path, config))
    peft_config = None
    if init_adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    elif config.mode == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules="all-linear", task_type="CAUSAL_LM",
        )
    args = SFTConfig(
        output_dir=str(output_dir / "checkpoints"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_steps,
        max_length=config.max_length,
        # Precision and checkpointing are set here, never left to TRL's defaults (bf16 and gradient
        # checkpointing both on): bf16 autocast on a CPU without native bf16 runs a reference GEMM
        # hundreds of times slower (issue 15), and recomputing activations only pays where memory is short.
        bf16=bf16,
        fp16=False,
        gradient_checkpointing=config.gradient_checkpointing,
        completion_only_loss=True,
        logging_steps=1,  # every step's loss goes to train_log.jsonl
        save_strategy="epoch",
        save_total_limit=1,
        report_to=list(config.report_to),
        seed=config.seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    dataset = Dataset.from_list([trl_pair(p, tokenizer, config.answer_tokens) for p in pairs])
    if soft_loss is None:
        return _answer_only_trainer_class()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                            peft_config=peft_config)
    from s2distill.training.soft_labels import SoftTargetsCollator

    trainer = _soft_label_trainer_class(**soft_loss)(model=model, args=args, train_dataset=dataset,
                                                      processing_class=tokenizer, peft_config=peft_config)
    trainer.data_collator = SoftTargetsCollator(trainer.data_collator)  # TRL's, and the teacher's columns
    return trainer


def train_student(pairs: Sequence[dict], model_path: Path, output_dir: Path, config, *, init_adapter: Path | None = None,
                  soft_loss: dict | None = None) -> Path:
    """Fine-tune and save the result (a LoRA adapter, or a full model) in `output_dir/weights`: in
    this process, or in `train.processes` processes through `accelerate launch` (training/launch.py).
    `soft_loss`: on soft labels (`build_trainer`)."""
    if not pairs:
        raise ValueError("curation kept no inputs: there is nothing to train on (see the run's curation/ folder)")
    from s2distill.training.launch import wants_launch

    try:
        if wants_launch(config):
            from s2distill.training.launch import launch_training

            return launch_training(pairs, model_path, output_dir, config, init_adapter=init_adapter, soft_loss=soft_loss)
        return run_training(pairs, model_path, output_dir, config, init_adapter=init_adapter, soft_loss=soft_loss)
    except BaseException as exc:
        discard_unfinished(output_dir)  # a half-written folder is never resumed from or taken for weights
        full = disk_full(exc, output_dir)
        if full is not None:
            raise full from exc
        raise


def discard_unfinished(output_dir: Path) -> None:
    """Remove what a failed or interrupted training left half-written: the weights' staging folder
    and any checkpoint without its trainer state (the last file a checkpoint gets)."""
    shutil.rmtree(output_dir / "weights.partial", ignore_errors=True)
    for checkpoint in (output_dir / "checkpoints").glob("checkpoint-*"):
        if not (checkpoint / "trainer_state.json").is_file():
            shutil.rmtree(checkpoint, ignore_errors=True)


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The checkpoints an interrupted training may resume from, oldest first (by step, not by name:
    checkpoint-10 comes after checkpoint-9)."""
    def step(path: Path) -> int:
        tail = path.name.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    found = [p for p in (output_dir / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=step)


_DISK_FULL_TEXT = ("no space left on device", "os error 28", "storagefull", "disk quota exceeded")


def disk_full(exc: BaseException, folder: Path) -> OSError | None:
    """An `OSError(ENOSPC)` naming `folder` when `exc` (or what caused it) is the disk filling up,
    which torch and safetensors report as RuntimeError or their own error types; else None."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return OSError(current.errno, current.strerror or "No space left on device", current.filename or str(folder))
        text = str(current).lower()
        if any(marker in text for marker in _DISK_FULL_TEXT):
            return OSError(errno.ENOSPC, "No space left on device", str(folder))
        if isinstance(current, RuntimeError) and ("write" in text or "inline_container" in text):
            try:  # torch's writer says only that a write failed: a disk with almost no room left is why
                if shutil.disk_usage(folder if folder.exists() else folder.parent).free < 64 * 2**20:
                    return OSError(errno.ENOSPC, "No space left on device", str(folder))
            except OSError:
                pass
        current = current.__cause__ or current.__context__
    return None


def run_training(pairs: Sequence[dict], model_path: Path, output_dir: Path, config, *, init_adapter: Path | None = None,
                 soft_loss: dict | None = None) -> Path:
    """The training itself, in this process: alone, or as one of several that `accelerate launch`
    started (training/worker.py), where every process trains and saves (DeepSpeed and FSDP gather the
    weights) but only the main one writes and moves the files."""
    from s2distill.training.guard import guard_training  # imports transformers: only when training
    from s2distill.training.log import check_report_to, keep_history

    check_report_to(config.report_to)
    trainer = build_trainer(pairs, model_path, output_dir, config, init_adapter=init_adapter, soft_loss=soft_loss)
    guard_training(trainer, pairs, config)  # a clear error, not a traceback or a NaN model
    keep_history(trainer, output_dir)
    checkpoints = complete_checkpoints(output_dir)
    trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    weights = output_dir / "weights"
    staging = output_dir / "weights.partial"
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()  # a no-op in a single process
    trainer.save_model(str(staging))  # writes on the main process only
    if main:
        if config.mode == "full":
            trainer.processing_class.save_pretrained(str(staging))
        shutil.rmtree(weights, ignore_errors=True)
        staging.rename(weights)
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return weights
