"""The soft_labels variant's extra stage: the teacher's distribution at every target token of the
step's pairs, given each pair's kept System 2 trace (distill/soft.py, training/soft_labels.py).

`distill/VARIANT/stageK-FMT.soft.jsonl` holds, per pair, its tokens as the student is trained on
them, the teacher's prompt (to audit what it read), and its top-k ids and log-probabilities at each
completion token: computed once, then read by the training of every epoch and every rerun. The
stage fingerprints the teacher model, k, the temperature and the prompt settings, and reads the set,
the curation and the samples, so a change to any of them redoes it and the training after it.
"""

from __future__ import annotations

import gc

from s2distill.config.recipe import RecipeError
from s2distill.distill.soft import teacher_prompt
from s2distill.hardware import resolve_dtype
from s2distill.progress import ProgressBar
from s2distill.stages.context import RunContext
from s2distill.stages.folder import ROWS, Done
from s2distill.stages.outputs import Outputs
from s2distill.stages.specs import SoftSpec, SoftTrainSpec


def soft_spec(ctx: RunContext) -> SoftSpec:
    """The stage's spec from the recipe: `distill.soft`, the student and its prompt settings."""
    recipe = ctx.recipe
    soft, method = recipe.distill.soft, recipe.student.method
    student = ctx.trainable_student()
    teacher = soft.teacher_model or student
    dtype = resolve_dtype(getattr(teacher, "dtype", "auto"))
    return SoftSpec(teacher_model=teacher, student_model=student, dtype="float32" if dtype == "int8" else dtype,
                    top_k=soft.top_k, temperature=soft.temperature, answer_tokens=recipe.train.answer_tokens,
                    shots=method.shots, question_suffix=getattr(method, "question_suffix", ""),
                    prompt_format=getattr(method, "prompt_format", "fewshot"), task=ctx.prompt_settings())


def soft_train_spec(ctx: RunContext) -> SoftTrainSpec:
    soft = ctx.recipe.distill.soft
    return SoftTrainSpec(temperature=soft.temperature, hard_weight=soft.hard_weight)


def soft_stage(ctx: RunContext, step, inputs: Done, verdicts: Done, sampled: Outputs, pairs: Done) -> Done:
    """The pairs of `pairs` (a `stages.distill.Step`'s set) with their tokens and the teacher's top-k
    at each target token."""
    spec = soft_spec(ctx)

    def compute() -> list[dict]:
        import torch
        from transformers import AutoTokenizer

        from s2distill.lm.weights import load_causal_lm
        from s2distill.training.soft_labels import completion_ids, prompt_ids, student_tokens, teacher_distributions

        traces, first = {}, {}
        for verdict, kept in sampled.kept(verdicts.value):
            for trace in kept:
                traces[(verdict.example_id, trace.teacher, trace.sample)] = trace
                first.setdefault(verdict.example_id, trace)  # a USC composition's pair: the first kept trace
        examples = {e.id: e for e in inputs.value}
        tokenizer = AutoTokenizer.from_pretrained(spec.student_model.weights_dir())
        teacher_tokenizer = tokenizer
        if spec.teacher_model.weights_dir() != spec.student_model.weights_dir():
            teacher_tokenizer = AutoTokenizer.from_pretrained(spec.teacher_model.weights_dir())
        if teacher_tokenizer is not tokenizer and teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise RecipeError("distill.soft.teacher_model: its vocabulary is not the student's; soft labels compare "
                              "the two models token by token, so the teacher must share the student's tokenizer")
        rows, sequences = [], []
        for pair in pairs.value:
            trace = traces.get((pair["id"], pair["teacher"], pair["sample"])) or first[pair["id"]]
            prompt = teacher_prompt(ctx.task, examples[pair["id"]], trace, pair, shots=spec.shots,
                                    question_suffix=spec.question_suffix, prompt_format=spec.prompt_format)
            tokens = student_tokens(pair, tokenizer, spec.answer_tokens)
            target = completion_ids(tokens)
            sequences.append((prompt_ids(prompt, teacher_tokenizer) + target, len(target)))
            rows.append({**pair, **tokens, "teacher_prompt": prompt})
        ctx.models.release_local()  # the sampling teacher's weights are not needed beside this one's
        model = load_causal_lm(spec.teacher_model.weights_dir(), getattr(torch, spec.dtype))
        model.eval()
        with ProgressBar("teacher's distributions given the traces", len(sequences), ctx.console,
                         enabled=ctx.show_progress) as advance:
            found = teacher_distributions(model, sequences, top_k=spec.top_k, temperature=spec.temperature,
                                          advance=advance)
        del model
        gc.collect()
        for row, distribution in zip(rows, found, strict=True):
            row.update(distribution)
        ctx.console.print("  " + agreement_line(rows))
        return rows

    return ctx.stage(step.soft_name, f"distill/{step.base}.soft.jsonl", spec=spec, codec=ROWS, compute=compute,
                     inputs={"set": pairs, "curation": verdicts, "inputs": inputs, **sampled.samples_read()})


def agreement(rows: list[dict]) -> dict:
    """How far the teacher's distributions are from the hard targets: the target tokens, the share
    where the teacher's most likely token is the target, and its mean probability of the target."""
    import math

    agrees = [a for row in rows for a in row.get("teacher_agrees", [])]
    logprobs = [lp for row in rows for lp in row.get("target_logprob", [])]
    return {"tokens": len(agrees), "teacher_top1_is_target": sum(agrees) / len(agrees) if agrees else None,
            "mean_target_probability": sum(map(math.exp, logprobs)) / len(logprobs) if logprobs else None}


def agreement_line(rows: list[dict]) -> str:
    """`agreement` as the console and the report say it."""
    found = agreement(rows)
    if not found["tokens"]:
        return "the teacher scored no target token"
    return (f"the teacher's most likely token is the target at {found['teacher_top1_is_target']:.1%} of "
            f"{found['tokens']} target tokens; its mean probability of the target {found['mean_target_probability']:.3f}")
