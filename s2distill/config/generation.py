"""Where a run's model calls execute: in this process (`local`), or on Ray actors (`ray`).

    generation: {executor: ray, address: "ray://head:10001", actors: 4, num_gpus_per_actor: 1}

Programs, batching and the completion cache stay on the driver either way; only the backend's
`generate` moves to the actors (s2distill/lm/ray_pool.py). The pool's `name` is the inner LM's,
so the cache key does not change with the executor: a run done locally replays on Ray and back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from s2distill.config.base import Strict
from s2distill.lm.base import LM


class GenerationConfig(Strict):
    """How generation is executed. `ray` needs the extra: pip install 's2distill[ray]'."""

    executor: Literal["local", "ray"] = Field("local", description="local: this process; ray: Ray actors")
    address: str | None = Field(None, description="ray: the cluster to join, e.g. ray://head:10001 or auto "
                                "(default: a Ray instance already started in this process, else a new local one)")
    actors: int = Field(2, ge=1, le=1024, description="ray: actors per model, each holding its own copy")
    num_gpus_per_actor: float = Field(0.0, ge=0, description="ray: GPUs each actor reserves (1: a GPU per copy)")
    num_cpus_per_actor: float = Field(1.0, ge=0, description="ray: CPUs each actor reserves")


def wrap_for_executor(config: GenerationConfig, model_config, *, adapter: str | Path | None = None) -> LM:
    """The LM for `model_config` as `config` says: built here, or a pool of Ray actors that each
    build it (`build_lm(model_config, adapter=adapter)` inside the actor)."""
    from s2distill.lm import build_lm

    if config.executor == "local":
        return build_lm(model_config, adapter=adapter)
    from s2distill.lm.ray_pool import RayPoolLM

    return RayPoolLM.from_model_config(
        model_config, adapter=adapter, actors=config.actors, num_gpus=config.num_gpus_per_actor,
        num_cpus=config.num_cpus_per_actor, address=config.address,
    )
