"""int8 weights for generation on a CPU: torch's dynamic quantisation of every linear layer, or of
the LM head alone.

On a CPU without native bf16 (AVX2 alone, or AVX-512 without its BF16 extension) generation would
otherwise run float32 matmuls, and most of a step is the 262k-row LM head. Dynamic quantisation
stores each linear layer's weights as int8, one scale per output channel, and quantises its input
on every call, so it needs no calibration data. On the project's AVX-512 machine it generated
2.3× float32's samples per second on the quickstart's System 2 workload, and System 2 lost
1.5–2 points; but the quickstart's distilled student lost 13 (72% → 59%, n=200), probably
because what its LoRA learned is a small change to the weights that int8 rounding blurs. So
`dtype: auto` never picks it; a recipe asks for it, typically for a teacher
(`teacher.model.dtype=int8`) whose sampling is the slow part, the student kept in float32 or bf16.

Outputs differ from float32 ones, so the dtype is part of the model's cache name (`...:int8`):
completions of the two are never mixed. Training never uses these weights: it loads the float32
model (s2distill/training/sft.py). GPUs have bf16 or float16 for the same purpose.

The LM head alone is another matter. Gemma's head projects onto 262,144 tokens: in float32 it is
about half of a decode step on a CPU (64 rows: 232 ms of 483 ms here). Training leaves it as it
was (LoRA's `all-linear` skips the output layer), and int8 with one scale per vocabulary row and
one per batch row (s2distill/lm/decode_head.py) moves few answers: on 200 test inputs, a distilled
quickstart student scored 74.0% with it against 74.5% with a float32 head (75.0% in bf16), and
System 2 93.5% against 94.0% (94.5%). `lm_head: auto` (s2distill/lm/configs.py) therefore
quantises the head where a model generates in float32 on a CPU with fast int8 matmuls (AVX-512
VNNI or AMX: a CPU with AVX-512 but not its BF16 extension), where it made the quickstart's
System 2 sampling 1.6–1.7× faster; with AVX2 alone int8 matmuls are slower than float32 ones
(s2distill/hardware.py), and the head stays float32.
"""

from __future__ import annotations

import warnings


def quantize_int8(model):
    """`model` with its `nn.Linear` layers replaced, in place, by dynamically quantised int8 ones
    (one scale per output channel: a single scale for the LM head's 262k rows would blur them)."""
    import torch

    with warnings.catch_warnings():
        # torch 2.13 marks torch.ao.quantization and quantised tensors deprecated, in favour of
        # torchao, but still ships and runs them (s2distill pins that version); torchao would be one
        # more dependency. The warnings would otherwise print on every model load.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated", category=UserWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)


def wants_int8_head(lm_head: str, dtype: str, device: str) -> bool:
    """Whether a model loaded in `dtype` on `device` gets an int8 LM head: `lm_head: int8` asks
    for it (float32 on a CPU only: the quantised head takes float32 activations), `model` keeps
    the model's own, `auto` quantises it where the model computes in float32 on a CPU whose int8
    matmuls are fast (s2distill/hardware.py's `fast_int8`: with AVX2 alone they are slower)."""
    if lm_head == "model" or dtype == "int8":  # int8 already quantises the head with the rest
        return False
    on_cpu_float32 = device == "cpu" and dtype == "float32"
    if lm_head == "int8" and not on_cpu_float32:
        raise ValueError(f"lm_head int8 needs dtype float32 on a CPU (this model: {dtype} on {device}); "
                         "use lm_head: model, or dtype: float32")
    if lm_head == "int8":
        return True
    from s2distill.hardware import fast_int8

    return on_cpu_float32 and fast_int8()
