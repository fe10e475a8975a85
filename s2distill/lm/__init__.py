"""The model p_θ: the LM protocol, its backends (one config class each, s2distill/lm/configs.py),
and the completion cache."""

from __future__ import annotations

from pathlib import Path

from s2distill.lm.base import LM, SampledLM
from s2distill.lm.cache import CachedLM
from s2distill.lm.configs import ModelConfig, model_config
from s2distill.lm.fake import FakeLM


def build_lm(config, *, adapter: str | Path | None = None) -> LM:
    """The LM of a model config (`config.build`); `adapter` loads trained weights (PEFT, or a full model folder)."""
    return config.build(adapter=adapter)


__all__ = ["LM", "CachedLM", "FakeLM", "ModelConfig", "SampledLM", "build_lm", "model_config"]
