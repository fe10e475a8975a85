"""The model p_θ: the LM protocol, its backends, the cache, and `build_lm` from a recipe's model."""

from __future__ import annotations

from pathlib import Path

from s2distill.lm.base import LM, SampledLM
from s2distill.lm.cache import CachedLM
from s2distill.lm.fake import FakeLM


def model_dir(config) -> Path:
    """The local folder of a transformers-backed model config (converting/building it if needed)."""
    if config.backend == "embedded":
        from s2distill.lm.embedded import embedded_model_dir

        return embedded_model_dir()
    if config.backend == "tiny":
        from s2distill.lm.tiny import tiny_model_dir

        return tiny_model_dir()
    if config.backend == "hf":
        return Path(config.path).expanduser()
    raise ValueError(f"backend {config.backend!r} has no model folder (it cannot be fine-tuned)")


def build_lm(config, *, adapter: str | Path | None = None) -> LM:
    """An LM from a recipe's model section; `adapter` loads trained PEFT weights (or a full model folder)."""
    if config.backend in ("fake", "openai") and adapter is not None:
        raise ValueError(f"the {config.backend} backend cannot load trained weights")
    if config.backend == "fake":
        return FakeLM(config.rules, default=config.default)
    if config.backend == "openai":
        from s2distill.lm.openai_api import OpenAICompatibleLM

        return OpenAICompatibleLM(
            base_url=config.base_url, model=config.model, api_key_env=config.api_key_env,
            max_concurrency=config.max_concurrency, timeout=config.timeout, max_retries=config.max_retries,
        )
    from s2distill.hardware import resolve_dtype
    from s2distill.lm.hf import HFLM

    base = model_dir(config)
    dtype = resolve_dtype(config.dtype)  # the resolved dtype names the model in cache keys: bf16 and fp32 differ
    name = f"{config.backend}:{base.name}:{dtype}" if config.backend != "hf" else None
    adapter_path = Path(adapter) if adapter else None
    if adapter_path is not None and (adapter_path / "config.json").exists():  # a fully fine-tuned model
        return HFLM(adapter_path, dtype=dtype, batch_rows=config.batch_rows, threads=config.threads)
    return HFLM(base, adapter=adapter_path, dtype=dtype, batch_rows=config.batch_rows, threads=config.threads, name=name)


__all__ = ["LM", "CachedLM", "FakeLM", "SampledLM", "build_lm", "model_dir"]
