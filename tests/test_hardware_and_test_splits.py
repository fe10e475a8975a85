"""`dtype: auto` picks bf16 only where the hardware has it; extra System 1 prompts and transfer test
splits are scored beside the recipe's own."""

from __future__ import annotations

import pytest

import s2distill.hardware as hardware
from s2distill.config.recipe import RecipeError, load_recipe
from s2distill.pipeline import Pipeline


@pytest.mark.parametrize(("flags", "capability", "expected"), [
    ({"avx2", "avx512f"}, "AVX512", "float32"),              # AVX-512 without its BF16 extension: bf16 GEMM is slow
    ({"avx2"}, "AVX2", "float32"),
    ({"avx2", "avx512f", "avx512_bf16"}, "AVX512", "bfloat16"),
    ({"avx2", "amx_bf16", "amx_tile"}, "AVX512", "bfloat16"),
    ({"avx2", "avx512f", "avx512_bf16"}, "AVX2", "float32"),  # torch held to AVX2 kernels (ATEN_CPU_CAPABILITY)
])
def test_auto_dtype_follows_the_cpu_flags(monkeypatch, flags, capability, expected):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(hardware, "cpu_capability", lambda: capability)
    assert hardware.resolve_dtype("auto", "cpu") == expected
    assert hardware.resolve_dtype("float32", "cpu") == "float32"  # an explicit choice is kept
    assert hardware.resolve_dtype("bfloat16", "cpu") == "bfloat16"


def test_auto_dtype_names_the_model_in_cache_keys(monkeypatch):
    from s2distill.lm import build_lm
    from s2distill.lm.configs import TinyModel

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(hardware, "default_device", lambda: "cpu")
    lm = build_lm(TinyModel())
    assert lm.dtype == "float32" and lm.name.endswith(":float32")  # a bf16 machine's samples are not replayed here
    # AVX-512 with VNNI but not BF16: float32, with the int8 LM head, which is another model in the cache
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_vnni"}))
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX512")
    assert build_lm(TinyModel()).name.endswith(":float32+int8-head")
    assert build_lm(TinyModel(lm_head="model")).name.endswith(":float32")
    assert build_lm(TinyModel(dtype="int8")).name.endswith(":int8")


def test_available_cores_is_positive_and_within_the_affinity_mask():
    import os

    assert 1 <= hardware.available_cores() <= len(os.sched_getaffinity(0))


def test_transfer_splits_and_system1_prompts_get_rows_of_their_own(recipes_dir, tmp_path):
    recipe = load_recipe(recipes_dir / "smoke.yaml", [
        "evaluate.transfer=[{words: 3}]",
        "evaluate.system1_prompts=[{name: direct, shots: 0, max_tokens: 6}]",
    ])
    report = Pipeline(recipe, tmp_path, progress=False).run()
    rows = {(r["system"], r.get("shots"), r.get("test")) for r in report["rows"]}
    assert rows == {
        ("system1", 2, None), ("system1", 2, "words=3"), ("system1", 0, None), ("system1", 0, "words=3"),
        ("system2", 2, None), ("system2", 2, "words=3"), ("distilled", 2, None), ("distilled", 2, "words=3"),
    }
    three = next(r for r in report["rows"] if r["system"] == "system2" and r.get("test") == "words=3")
    assert three["n"] == 8
    # The 3-word split really has three words per input (the labels it was scored against prove it).
    from s2distill.artifacts import read_jsonl

    assert all(len(r["target"]) == 3 for r in read_jsonl(tmp_path / "eval" / "system2-pal@words=3.jsonl"))
    assert "[test: words=3]" in (tmp_path / "report.md").read_text()


def test_a_transfer_split_that_is_not_a_valid_task_fails_at_load(recipes_dir):
    with pytest.raises(RecipeError, match="evaluate.transfer"):
        load_recipe(recipes_dir / "smoke.yaml", ["evaluate.transfer=[{words: 99}]"])
    with pytest.raises(RecipeError, match="evaluate.transfer"):
        load_recipe(recipes_dir / "smoke.yaml", ["evaluate.transfer=[{colour: red}]"])


def test_the_student_is_zero_shot_unless_the_recipe_says_otherwise(recipes_dir):
    from s2distill.config.recipe import StudentConfig

    assert StudentConfig().method.shots == 0
    assert StudentConfig.model_validate({"method": {"name": "direct", "max_tokens": 4}}).method.shots == 0
    assert StudentConfig.model_validate({"method": {"name": "direct", "shots": 4}}).method.shots == 4
    assert load_recipe(recipes_dir / "quickstart.yaml").evaluate.system1_prompts[0].shots == 4
