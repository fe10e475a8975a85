"""What this machine computes fast: the dtype and thread count every backend and training use.

bfloat16 halves the memory traffic of a matmul, but only hardware with native bf16 arithmetic
turns that into speed: on a CPU with AVX2 alone (or AVX-512 without its BF16 extension) PyTorch's
bf16 GEMM falls back to a reference kernel several times slower than float32 (issue 15 measured
one LM-head projection at 4.6 s in bf16 against 0.75 s in float32). So `dtype: auto`, the
default, picks bfloat16 only where it is fast — a CUDA device that supports it, or a CPU whose
flags list `avx512_bf16` or `amx_bf16` — and float32 everywhere else, for generation and for
training's mixed precision alike.

`torch.backends.cpu.get_cpu_capability()` says "AVX512" whether or not the BF16 extension is
there, so the CPU's own flags decide (Linux's /proc/cpuinfo; other systems get float32), and
torch's capability must be AVX-512 too: with `ATEN_CPU_CAPABILITY=avx2` torch runs its AVX2
kernels whatever the flags say.

The same holds for int8 matmuls (the int8 LM head, s2distill/lm/int8.py): fast with AVX-512 VNNI
or AMX, and slower than float32 with AVX2 alone. Measured on this project's machine with torch
held to AVX2 (`ATEN_CPU_CAPABILITY=avx2`): the int8 head on 64 rows 406 ms against float32's
250 ms (with AVX-512 VNNI: 54 against 315 ms), and the quickstart's System 2 sampling 2.27
samples/s with the int8 head against 2.90 without it.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_CPU_FLAGS = ("avx512_vnni", "amx_int8")
AVX512_CAPABILITIES = ("AVX512", "AMX")  # torch's names for the kernels those flags need


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_capability() -> str:
    """PyTorch's name for the vector instructions it dispatches to ("AVX2", "AVX512", ...)."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def fast_bf16(device: str = "cpu") -> bool:
    """Whether bfloat16 matmuls run natively (and so faster than float32) on `device`."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return _avx512_kernels() and any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def fast_int8() -> bool:
    """Whether int8 matmuls on this CPU beat float32 ones (VNNI or AMX, with torch's AVX-512 kernels)."""
    return _avx512_kernels() and any(flag in cpu_flags() for flag in INT8_CPU_FLAGS)


def _avx512_kernels() -> bool:
    return cpu_capability().upper().startswith(AVX512_CAPABILITIES)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(requested: str, device: str | None = None) -> str:
    """`auto` -> "bfloat16" where it is fast on `device` (default: the one models load on), else
    "float32"; any explicit dtype (`int8` included: s2distill/lm/int8.py) is kept as asked."""
    if requested != "auto":
        return requested
    return "bfloat16" if fast_bf16(device or default_device()) else "float32"


def available_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup CPU quota when one is
    set (a container's `--cpus`), which `os.cpu_count()` and torch's default both ignore."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def describe(dtype: str) -> dict[str, str | int]:
    """What a report or benchmark prints about the hardware a figure was measured on."""
    return {
        "cpu_capability": cpu_capability(),
        "cpu_bf16": "yes" if fast_bf16("cpu") else "no",
        "cpu_int8": "yes" if fast_int8() else "no",
        "device": default_device(),
        "dtype": dtype,
        "threads": available_cores(),
    }
