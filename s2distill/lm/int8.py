"""int8 weights for generation on a CPU: torch's dynamic quantisation of every linear layer.

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
model (s2distill/train.py). GPUs have bf16 or float16 for the same purpose.
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
