"""HaRD's three stages and the baselines, end to end on the fake teacher and the tiny student."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from s2distill.config.recipe import validate_recipe
from s2distill.pipeline import Pipeline
from s2distill.artifacts import read_jsonl

# The refiner (the fake teacher) rewrites the question's program into one shorter line.
REFINE_RULE = {
    "pattern": r'"(\w+) (\w+)" and concatenate them\.\nYour previous thinking process:',
    "responses": ['print("".join(w[-1] for w in ["\\1", "\\2"]))\n\n'],
}


@pytest.fixture
def smoke_data(recipes_dir):
    data = yaml.safe_load((recipes_dir / "smoke.yaml").read_text())
    data["teacher"]["model"]["rules"].append(REFINE_RULE)
    return data


def test_the_hard_curriculum_trains_three_stages_each_from_the_last_and_reports_each(smoke_data, tmp_path):
    smoke_data["distill"] = {"stages": ["full_reasoning", "compressed_reasoning", "answer_only"], "reasoning_max_tokens": 24}
    recipe = validate_recipe(smoke_data)
    report = Pipeline(recipe, tmp_path, progress=False).run()

    distilled = [r for r in report["rows"] if r["system"] == "distilled"]
    assert [r["stage"] for r in distilled] == ["1/3 full_reasoning", "2/3 compressed_reasoning", "3/3 answer_only"]
    assert all(r["n"] == 8 and r["train_pairs"] > 0 for r in distilled)
    folder = tmp_path / "distill" / "distilled"
    full = read_jsonl(folder / "stage1-full_reasoning.jsonl")
    compressed = read_jsonl(folder / "stage2-compressed_reasoning.jsonl")
    answer = read_jsonl(folder / "stage3-answer_only.jsonl")
    # Stage 1: the teacher's program, then its answer; several distinct kept programs per input.
    assert all(p["completion"].startswith(' words = ["') and "\nThe answer is " in p["completion"] for p in full)
    assert len(full) > len(answer) == report["curation"][0]["kept"]
    # Stage 2: the refiner's accepted one-line rewrites, same answers, shorter.
    rewrites = read_jsonl(folder / "stage2-compressed_reasoning.rewrites.jsonl")
    assert rewrites and all(r["accepted"] for row in rewrites for r in row["rewrites"])
    assert all(p["completion"].startswith(' print("".join(w[-1] for w in [') for p in compressed)
    mean = lambda pairs: sum(len(p["completion"]) for p in pairs) / len(pairs)
    assert mean(answer) < mean(compressed) < mean(full)
    # The refiner read the stage-1 student's own output for each input.
    assert all("student" in row for row in rewrites)
    # Each stage continued from the previous stage's adapter: its saved config names the same base,
    # and its weights moved away from where the previous stage left them.
    import torch
    from safetensors.torch import load_file

    weights = [load_file(tmp_path / "student" / "distilled" / f"stage{k}" / "weights" / "adapter_model.safetensors") for k in (1, 2, 3)]
    assert weights[0].keys() == weights[1].keys() == weights[2].keys()
    lora_b = [key for key in weights[0] if "lora_B" in key]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in lora_b)
    assert "| distilled | 2/3 compressed_reasoning | direct, 2-shot |" in (tmp_path / "report.md").read_text()


def test_continued_training_starts_from_the_previous_adapter(smoke_data, tmp_path):
    """The trainer of stage k+1 holds stage k's adapter weights before its first step."""
    from safetensors.torch import load_file

    from s2distill.training.sft import build_trainer, train_student

    recipe = validate_recipe(smoke_data)
    pairs = [{"prompt": "Q: ab cd\nA:", "completion": " bd\n"}] * 4
    first = train_student(pairs, recipe.student.model.weights_dir(), tmp_path / "one", recipe.train)
    trainer = build_trainer(pairs, recipe.student.model.weights_dir(), tmp_path / "two", recipe.train, init_adapter=first)
    saved = load_file(first / "adapter_model.safetensors")
    params = dict(trainer.model.named_parameters())
    for key, value in saved.items():
        name = next(n for n in params if n.endswith(key.removesuffix(".weight") + ".default.weight"))
        assert params[name].requires_grad and (params[name].detach() == value).all(), name


def test_baselines_each_get_a_row_and_their_own_curation(smoke_data, tmp_path):
    smoke_data["baselines"] = ["distill_system1", "standard_kd", "no_filter"]
    recipe = validate_recipe(smoke_data)
    report = Pipeline(recipe, tmp_path, progress=False).run()
    systems = [r["system"] for r in report["rows"]]
    assert systems == ["system1", "system2", "distilled", "distill_system1", "standard_kd", "no_filter"]
    curation = {c["variant"]: c for c in report["curation"]}
    # Distill System 1: the student's own System 1 samples, under the same filter.
    assert curation["distill_system1"]["filter"] == "self_consistency"
    assert set(curation["distill_system1"]["per_teacher"]) == {"system1"}
    assert len(read_jsonl(tmp_path / "samples" / "system1.jsonl")) == 24 * 4
    # The untrained tiny student's samples never parse: the baseline is reported, not trained.
    row = report["rows"][3]
    assert curation["distill_system1"]["kept"] == 0
    assert row["score"] is None and row["note"] == "not trained: curation kept no input"
    # (the tiny model runs in float32 here: with an int8 LM head where this CPU has fast int8, s2distill/hardware.py)
    assert re.search(r"\| distill_system1 \| answer_only \| direct, 2-shot \| tiny test model, float32(, int8 LM head)? \| — \(not trained",
                     (tmp_path / "report.md").read_text())
    # Standard KD and no filter: each teacher's first sample, every parseable one kept.
    for name in ("standard_kd", "no_filter"):
        assert curation[name]["filter"] == "none" and curation[name]["first_sample_only"]
        assert curation[name]["per_teacher"]["pal"]["outputs"] == 24
    assert curation["no_filter"]["kept"] > curation["distilled"]["kept"]
    kd = read_jsonl(tmp_path / "distill" / "standard_kd" / "stage1-label_only.jsonl")  # TwT: teacher labels as targets
    assert len(kd) == curation["standard_kd"]["kept"] and all("\n" not in p["completion"].strip() for p in kd)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["rows"] == report["rows"]


def test_a_second_compression_stage_rewrites_the_previous_rewrite_not_the_original():
    """TwT Table 3's four stages: the teacher "further compresses" what stage 2 trained on."""
    from s2distill.distill.compress import compression_program
    from s2distill.lm import FakeLM
    from s2distill.tasks.last_letters import LastLetters
    from s2distill.types import Call, Example, Trace, Usage

    trace = Trace("x", "pal", "ab", [Call("p", "a long original program", Usage())], teacher="pal")
    example = Example("x", {"words": ["Ada", "Bob"]})
    lm = FakeLM(default="short")
    first = compression_program(LastLetters(), {"x": [trace]}, {"x": "ab"}, prompt_format="chat")(example, lm)
    assert first.meta["rewrites"][0]["original"] == "a long original program"
    again = compression_program(LastLetters(), {"x": [trace]}, {"x": "ab"}, prompt_format="chat",
                                rationales={("x", "pal", 0): "the stage-2 rewrite"})(example, lm)
    assert again.meta["rewrites"][0]["original"] == "the stage-2 rewrite"
    assert "Your previous thinking process: the stage-2 rewrite" in again.calls[0].prompt


def test_twt_baselines_standard_kd_trains_on_labels_and_tinyllm_on_every_teachers_rationale():
    from s2distill.distill.variants import plan_variants

    recipe = validate_recipe({"task": {"name": "last_letters"}, "baselines": ["standard_kd", "tinyllm"],
                              "teachers": [{"name": "a", "method": {"name": "cot"}}, {"name": "b", "method": {"name": "cot"}}]})
    variants = {v.name: v for v in plan_variants(recipe)}
    assert variants["standard_kd"].stages == ("label_only",)  # TwT: "the teacher model's generated labels"
    tiny = variants["tinyllm"]
    assert tiny.stages == ("full_reasoning",) and tiny.sources == ("a", "b") and tiny.filter == "none" and tiny.first_sample_only


def test_table6_compressor_and_fixed_length_compression_need_no_student_output(smoke_data, tmp_path):
    """TwT Table 6's alternatives: the refiner compresses without the student's output, or the
    rationale is cut to a fixed share of its words; switching redoes stage 2 on, never stage 1."""
    smoke_data["distill"] = {"stages": ["full_reasoning", "compressed_reasoning"], "reasoning_max_tokens": 24,
                             "compression": "compressor"}
    report = Pipeline(validate_recipe(smoke_data), tmp_path, progress=False).run()
    rows = read_jsonl(tmp_path / "distill" / "distilled" / "stage2-compressed_reasoning.rewrites.jsonl")
    assert rows and all(row["student"] is None for row in rows)
    assert all(r["accepted"] and r["rewritten"].startswith("print(") for row in rows for r in row["rewrites"])
    assert report["rows"][-1]["stage"] == "2/2 compressed_reasoning"

    smoke_data["distill"].update(compression="fixed_length", compression_ratio=0.5)
    again = Pipeline(validate_recipe(smoke_data), tmp_path, progress=False).run()
    redone = {r["name"] for r in again["stages"]["ran"]}
    assert redone == {"compress:distilled/stage2-compressed_reasoning", "distill:distilled/stage2-compressed_reasoning",
                      "train:distilled/stage2", "eval:distilled-stage2"}
    for row in read_jsonl(tmp_path / "distill" / "distilled" / "stage2-compressed_reasoning.rewrites.jsonl"):
        for r in row["rewrites"]:
            words = r["original"].split(" ")
            assert r["rewritten"] == " ".join(words[: -(-len(words) // 2)]).strip()
    assert again["lm"]["calls"] == 8  # the retrained stage-2 student's evaluation: the cut needs no model


def test_distilling_step_by_step_trains_two_prefixed_tasks_and_is_asked_with_the_label_prefix(smoke_data, tmp_path):
    """Hsieh et al. 2023 (TwT Table 1's "Distilling"): per kept input a "[label]" pair (the answer) and a
    "[rationale]" pair (the rationale alone), in one set; evaluation, predict and export ask with "[label]"."""
    from s2distill.student.predict import load_student

    smoke_data["baselines"] = ["distilling_step_by_step"]
    smoke_data["evaluate"] = {"systems": ["system1"]}
    report = Pipeline(validate_recipe(smoke_data), tmp_path, progress=False).run()
    assert [r["system"] for r in report["rows"]] == ["system1", "distilling_step_by_step"]
    curation = {c["variant"]: c for c in report["curation"]}["distilling_step_by_step"]
    assert curation["filter"] == "none" and curation["first_sample_only"]  # each teacher's first sample, unfiltered
    pairs = read_jsonl(tmp_path / "distill" / "distilling_step_by_step" / "stage1-step_by_step.jsonl")
    by_input: dict[str, list[dict]] = {}
    for pair in pairs:
        by_input.setdefault(pair["id"], []).append(pair)
    assert len(by_input) == curation["kept"] > 0 and all(len(p) == 2 for p in by_input.values())
    for label, rationale in by_input.values():
        assert (label["task"], rationale["task"]) == ("label", "rationale")
        assert label["prompt"].startswith("[label] Q: ") and rationale["prompt"].startswith("[rationale] Q: ")
        assert label["prompt"].removeprefix("[label] ") == rationale["prompt"].removeprefix("[rationale] ")
        assert "\n" not in label["completion"].strip() and "The answer is" not in label["completion"]
        assert rationale["completion"].startswith(' words = ["') and "The answer is" not in rationale["completion"]
    # The student answers one line after the label prefix: the saved prompt, and predict's program, carry it.
    weights = tmp_path / "student" / "distilling_step_by_step" / "stage1" / "weights"
    spec = json.loads((weights / "s2distill_prompt.json").read_text())
    assert spec["task_prefix"] == "[label] " and spec["prompt"].startswith("[label] Q: ") and not spec["multiline"]
    assert spec["stop"] == ["\n"]
    student = load_student(tmp_path, variant="distilling_step_by_step")
    assert student.prompt({"words": ["Ada", "Bob"]}).startswith("[label] Q: Take the last letters")
    # Evaluation asked with the prefix too: every test prompt is longer than System 1's by the same tokens.
    system1 = {r["id"]: r["prompt_tokens"] for r in read_jsonl(tmp_path / "eval" / "system1.jsonl")}
    asked = {r["id"]: r["prompt_tokens"] for r in read_jsonl(tmp_path / "eval" / "distilling_step_by_step-stage1.jsonl")}
    assert len({asked[i] - system1[i] for i in system1}) == 1 and asked["test-0"] > system1["test-0"]


def test_step_by_step_needs_the_direct_student_method():
    with pytest.raises(Exception, match="only the direct method has"):
        validate_recipe({"task": {"name": "last_letters"}, "baselines": ["distilling_step_by_step"],
                         "student": {"method": {"name": "cot"}}})
