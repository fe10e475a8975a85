"""The generation section (executor local or ray) without Ray: validation, the local path, and
the install hint when Ray is missing."""

from __future__ import annotations

import sys

import pytest

from s2distill.errors import S2DistillError
from s2distill.config.generation import GenerationConfig, wrap_for_executor
from s2distill.lm import FakeLM
from s2distill.lm.configs import model_config as ModelConfig  # keyword form: ModelConfig(backend=...)


def test_defaults_are_local_and_unknown_keys_fail():
    config = GenerationConfig()
    assert config.executor == "local" and config.actors == 2 and config.num_gpus_per_actor == 0
    for bad in ({"executor": "spark"}, {"actors": 0}, {"num_gpus_per_actor": float("inf")}, {"actorz": 2}):
        with pytest.raises(ValueError):
            GenerationConfig(**bad)


def test_local_executor_builds_the_lm_here():
    assert isinstance(wrap_for_executor(GenerationConfig(), ModelConfig(backend="fake")), FakeLM)


def test_ray_executor_without_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(S2DistillError, match=r"pip install 's2distill\[ray\]'"):
        wrap_for_executor(GenerationConfig(executor="ray"), ModelConfig(backend="fake"))
