"""Memory a run no longer uses goes back: glibc's allocator tuned (s2distill/allocator.py), the heap's
free pages handed back when a model or a training is freed (`give_back_memory`), and the models this
process holds released before training (`Models.release_local`)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from s2distill.allocator import tune_allocator
from s2distill.lm.fake import FakeLM
from s2distill.lm.hf import HFLM
from s2distill.models import Models
from s2distill.types import Request

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Freed blocks of worker threads, in the shape that made the quickstart's sampler hold 7 GiB:
# a 20 MiB block mapped and freed (glibc then serves blocks up to 20 MiB from its heaps), then
# from four threads in turn 60 MiB of 2 MiB blocks, freed under a small block that outlives them.
PATTERN = """
import sys, threading, psutil, torch
from s2distill.allocator import tune_allocator
print(','.join(tune_allocator()), file=sys.stderr)
proc = psutil.Process()
before = proc.memory_info().rss
big = torch.ones(5 << 20); del big
keep = []
def work():
    blocks = [torch.ones(1 << 19) for _ in range(30)]
    keep.append(torch.ones(16))
    del blocks
for _ in range(4):
    t = threading.Thread(target=work); t.start(); t.join()
print((proc.memory_info().rss - before) / 2**20)
"""


# Blocks under the mmap threshold come from the heap; a small block kept after each of them keeps
# the freed ones apart from the heap's top, so freeing them leaves their pages held until the heap
# is trimmed.
HEAP_PATTERN = """
import psutil, torch
from s2distill.allocator import give_back_memory, tune_allocator
tune_allocator()
proc = psutil.Process()
before = proc.memory_info().rss
blocks, kept = [], []
for _ in range(3000):
    blocks.append(torch.ones(1 << 14))
    kept.append(torch.ones(16))
del blocks
held = (proc.memory_info().rss - before) / 2**20
trimmed = give_back_memory()
print(held, (proc.memory_info().rss - before) / 2**20, trimmed)
"""


def _kept_mib(malloc: str) -> tuple[float, str]:
    """MiB the pattern leaves held, and the settings it applied, with `S2DISTILL_MALLOC=malloc` and
    no glibc variable of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | {"S2DISTILL_MALLOC": malloc}
    done = subprocess.run([sys.executable, "-c", PATTERN], capture_output=True, text=True, env=env, check=True)
    return float(done.stdout.strip()), done.stderr.strip()


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_tuned_allocator_gives_freed_thread_memory_back_where_the_default_keeps_it():
    kept_default, applied_default = _kept_mib("default")
    kept_tuned, applied = _kept_mib("")
    assert applied_default == "" and applied == "MALLOC_MMAP_THRESHOLD_,MALLOC_TRIM_THRESHOLD_,MALLOC_ARENA_MAX"
    if kept_default < 60:
        pytest.skip(f"this C library kept only {kept_default:.0f} MiB untuned: the pattern shows nothing here")
    assert kept_tuned < 16, f"{kept_tuned:.0f} MiB still held after the blocks were freed"


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_giving_memory_back_returns_the_heaps_free_pages_unless_the_user_opted_out():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    outcomes = {}
    for malloc in ("", "default"):
        done = subprocess.run([sys.executable, "-c", HEAP_PATTERN], capture_output=True, text=True, check=True,
                              env=env | {"S2DISTILL_MALLOC": malloc})
        held, after, trimmed = done.stdout.split()
        outcomes[malloc] = (float(held), float(after), trimmed)
    held, after, trimmed = outcomes[""]
    # 187 MiB of blocks freed but held, then handed back (the 3,000 small tensors kept stay: ~20 MiB)
    assert held > 150 and held - after > 150 and trimmed == "True"
    held, after, trimmed = outcomes["default"]
    assert trimmed == "False" and after > 150  # opted out: glibc left as it is


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_a_setting_the_user_made_in_the_environment_is_left_as_it_is(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert tune_allocator.__wrapped__() == ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("S2DISTILL_MALLOC", "default")
    assert tune_allocator.__wrapped__() == ()


def test_release_local_drops_transformers_weights_and_keeps_remote_models_and_the_counts(tmp_path):
    from s2distill.lm.configs import FakeModel, TinyModel

    built = {"local": [], "remote": []}

    def factory(config, *, adapter=None):
        lm = config.build() if config.backend == "tiny" else FakeLM()
        built["local" if config.backend == "tiny" else "remote"].append(lm)
        return lm

    tiny, fake = TinyModel(dtype="float32"), FakeModel()
    with Models(tmp_path / "cache.sqlite", factory=factory) as models:
        local, remote = models.get(tiny), models.get(fake)
        local.generate([Request(prompt="ab", max_tokens=2, temperature=0.0)])
        hf = built["local"][0]
        assert hf._model is not None
        models.release_local()
        assert hf._model is None  # the weights are gone, whoever still refers to the LM
        assert models.get(fake) is remote  # a server's client is kept
        assert models.calls() == {"calls": 1, "cached": 0}  # the released model's calls still count
        again = models.get(tiny)
        assert again is not local and built["local"][1] is again.inner  # asked again: loaded anew
        again.generate([Request(prompt="ab", max_tokens=2, temperature=0.0)])
        assert models.calls() == {"calls": 1, "cached": 1}


def test_training_starts_with_no_local_model_held(recipes_dir, tmp_path, monkeypatch):
    """A local model used before training (here the smoke recipe's tiny student, asked once before
    its set is built, as a teacher on the same model would be) is released when training starts."""
    import s2distill.pipeline as pipeline
    import s2distill.training.sft as sft
    from s2distill.config.recipe import load_recipe

    held_at_training, loaded = [], []
    original_load, original_train, original_set = HFLM.load, sft.train_student, pipeline.set_stage
    monkeypatch.setattr(HFLM, "load", lambda self: loaded.append(self) or original_load(self))

    def set_stage(ctx, *args, **kwargs):
        ctx.models.get(ctx.recipe.student.model).generate([Request(prompt="ab", max_tokens=2, temperature=0.0)])
        return original_set(ctx, *args, **kwargs)

    def train(*args, **kwargs):
        held_at_training.append([lm for lm in loaded if lm._model is not None])
        return original_train(*args, **kwargs)

    monkeypatch.setattr(pipeline, "set_stage", set_stage)
    monkeypatch.setattr(sft, "train_student", train)
    pipeline.Pipeline(load_recipe(recipes_dir / "smoke.yaml"), tmp_path / "run", progress=False).run()
    assert loaded and held_at_training == [[]]
