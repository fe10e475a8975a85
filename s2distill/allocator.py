"""Keep a run's resident memory near what it uses: glibc's allocator told to give memory back.

PyTorch on a CPU takes its tensors from the C library's `malloc`. glibc's defaults suit small,
long-lived objects and hurt a decode loop badly in two ways:

- **Per-thread arenas.** A method runner's programs call the model from worker threads, and the
  thread whose call completes a batch runs it (s2distill/lm/batching.py), so each batch's tensors
  come from whichever of up to 8 × cores arenas that thread was given. Memory freed in one arena
  is not reused by the others: every arena grows to a batch's peak.
- **The sliding mmap threshold.** A block larger than 128 KiB is mapped on its own and unmapped
  when freed, but each such free raises the threshold to that block's size (up to 32 MiB), so the
  KV caches and logits of later steps come from the heap, whose free space is kept, not returned.

Measured on a real AVX2-only EPYC: three of the quickstart's sampling batches (64 PAL prompts ×
2 samples), each run from a fresh thread as the runner does, peaked at 3.14 GiB and held 2.48 GiB
after each batch with glibc's defaults, against 2.60 and 1.64 GiB with these settings. The whole
quickstart's peak with them is 2.73 GiB (7.22 GiB before; docs/benchmarks.md, memory.py).

The price is page faults: a block mapped on its own is fresh memory each time, where the heap would
have reused the last batch's. On one sampling batch (same machine, alternating runs) the decode
loop took 27.1-28.1 s tuned against 23.2-27.0 s with glibc's defaults, most of the difference in
reordering the KV cache when samples fork (2.5 s against 0.8 s); the sampler's own temporaries,
which cost as much again, are now written in place (lm/hf.py). Transparent huge pages
(`THP_MEM_ALLOC_ENABLE=1`) took back only a third of it, so they are not set.

`tune_allocator()` fixes the threshold at 1 MiB (every block from 1 MiB up is mapped and handed
back when freed; fixing it also stops it from sliding), trims the heap's free top beyond 1 MiB,
and caps the arenas at 2. A setting the user made through glibc's own environment variable
(`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`) is left as they made it;
`S2DISTILL_MALLOC=default` leaves all three. Elsewhere than glibc (macOS, musl) it does nothing.

`give_back_memory()` is for the moments a run frees a lot at once (a model released, a training
finished): the collector's pass, then glibc's `malloc_trim(0)`, which hands back the free pages
inside the heap and its arenas, where the trim threshold only returns the heap's free top. After a
64-pair LoRA training of the embedded model in float32 (the AVX2 stand-in), the process held 0.88
GiB with no tensor left; the trim brought it to 0.56 GiB (Python's modules and objects), and every
later stage of the run starts from there (benchmarks/memory.py's "main end" column).
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from functools import cache

# mallopt's parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MIB = 1 << 20
SETTINGS = (  # (parameter, value, the environment variable through which a user sets it instead)
    (M_MMAP_THRESHOLD, MIB, "MALLOC_MMAP_THRESHOLD_"),
    (M_TRIM_THRESHOLD, MIB, "MALLOC_TRIM_THRESHOLD_"),
    (M_ARENA_MAX, 2, "MALLOC_ARENA_MAX"),
)


def _libc_unless_opted_out():
    """The C library when it is glibc and `S2DISTILL_MALLOC=default` is not set, else None."""
    if os.environ.get("S2DISTILL_MALLOC", "").lower() == "default":
        return None
    return _detect_glibc()


@cache
def _detect_glibc():
    """This process's C library if it is glibc (Linux; musl has no `gnu_get_libc_version`), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only; musl's mallopt ignores these
    except (OSError, AttributeError):
        return None
    return libc


def give_back_memory() -> bool:
    """Collect garbage now and hand the freed pages back to the system; whether the trim ran (glibc,
    unless `S2DISTILL_MALLOC=default`)."""
    gc.collect()
    libc = _libc_unless_opted_out()
    if libc is None:
        return False
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    libc.malloc_trim(0)
    return True


@cache
def tune_allocator() -> tuple[str, ...]:
    """Apply the settings above once per process; returns the environment variables of the ones
    applied (empty where the C library is not glibc or the user opted out)."""
    libc = _libc_unless_opted_out()
    if libc is None:
        return ()
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = []
    for parameter, value, variable in SETTINGS:
        if variable not in os.environ and mallopt(parameter, value) == 1:  # mallopt returns 1 on success
            applied.append(variable)
    return tuple(applied)
