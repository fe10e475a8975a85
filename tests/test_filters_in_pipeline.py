"""Each filter chosen in a recipe, end to end on fake teachers and the tiny student."""

from __future__ import annotations

import pytest
import yaml

from s2distill.config.recipe import RecipeError, validate_recipe
from s2distill.pipeline import Pipeline
from s2distill.artifacts import read_jsonl
from s2distill.types import Verdict

STUDENT = {"model": {"backend": "tiny"}, "method": {"name": "direct", "shots": 2, "max_tokens": 4}}
TRAIN = {"epochs": 1, "batch_size": 8, "lora_r": 2, "lora_alpha": 4}


def coin_rule(first: bool, second: bool, answer: str) -> dict:
    verb = lambda flips: "flips" if flips else "does not flip"
    question = f"A coin is heads up. Alex {verb(first)} the coin. Sam {verb(second)} the coin. Is the coin still heads up?"
    return {"pattern": "Question: " + question.replace(".", r"\.").replace("?", r"\?") + r"\nSolution:$",
            "responses": [f" The answer is {answer}."]}


def test_perturbation_keeps_only_inputs_whose_answer_survives_renaming_the_people(tmp_path):
    """The fake says "yes" to every original question (a bias) but answers the renamed copies
    correctly, so only inputs whose true answer is "yes" agree."""
    rules = [coin_rule(a, b, "yes" if a == b else "no") for a in (True, False) for b in (True, False)]
    recipe = validate_recipe({
        "task": {"name": "coin_flip", "train_size": 16, "test_size": 4, "test_source": "generated"},
        "teacher": {"model": {"backend": "fake", "rules": rules, "default": " The answer is yes."},
                    "method": {"name": "cot", "shots": 2}, "samples": 2},
        "curation": {"filter": "perturbation"}, "student": STUDENT, "train": TRAIN,
    })
    report = Pipeline(recipe, tmp_path, progress=False).run()
    perturbed = read_jsonl(tmp_path / "samples" / "cot.perturbed.jsonl")
    assert len(perturbed) == 32 and all("Alex" in t["calls"][0]["prompt"].rsplit("Question:", 1)[1] for t in perturbed)
    inputs = {row["id"]: row["inputs"]["flips"] for row in read_jsonl(tmp_path / "inputs" / "train.jsonl")}
    verdicts = read_jsonl(tmp_path / "curation" / "verdicts.jsonl")
    for v in verdicts:
        flips = [f for _, f in inputs[v["example_id"]]]
        assert v["kept"] == (flips[0] == flips[1]), v
        if not v["kept"]:
            assert v["reason"] == "perturbation disagreed: 'yes' vs 'no' (mapped back from 'no')"
    assert 0 < report["curation"][0]["kept"] < 16


def test_perturbation_on_a_task_without_one_is_refused_before_any_work(recipes_dir, tmp_path):
    data = yaml.safe_load((recipes_dir / "smoke.yaml").read_text())
    data["curation"] = {"filter": "perturbation"}
    with pytest.raises(RecipeError, match="task last_letters has no answer-preserving perturbation"):
        Pipeline(validate_recipe(data), tmp_path, progress=False)


def test_usc_composes_the_final_answer_and_trains_on_it(recipes_dir, tmp_path):
    """Figure 12 of Yu et al. 2024: the judge composes a FINAL answer from the N outputs; that answer
    is the answer-only target, and the outputs agreeing with it are the kept ones."""
    data = yaml.safe_load((recipes_dir / "smoke.yaml").read_text())
    # The judge (the same fake) composes "ab" for every input.
    data["teacher"]["model"]["rules"].append({"pattern": "\nFINAL:$", "responses": [" ab"]})
    data["curation"] = {"filter": "usc"}
    report = Pipeline(validate_recipe(data), tmp_path, progress=False).run()
    samples = read_jsonl(tmp_path / "samples" / "pal.jsonl")
    verdicts = [Verdict.from_row(row) for row in read_jsonl(tmp_path / "curation" / "verdicts.jsonl")]
    for v in verdicts:
        parsed = [t for t in samples if t["example_id"] == v.example_id and t["answer"] is not None]
        assert v.kept and v.answer == "ab" and v.composed == "ab" and "composed" not in v.meta, v
        assert [k.sample for k in v.kept_outputs] == [t["sample"] for t in parsed if t["answer"] == "ab"]
    pairs = read_jsonl(tmp_path / "distill" / "distilled" / "stage1-answer_only.jsonl")
    assert len(pairs) == 24 and {(p["teacher"], p["completion"]) for p in pairs} == {("usc", " ab\n")}
    # One composition call per input on top of the samples and the evaluations (and the audit's System 1).
    assert report["lm"]["calls"] == 24 * 4 + 24 + 8 * 3 + 24


def twt_teacher(rationale: str, confidence: float) -> dict:
    rule = {"pattern": r'"(\w*)(\w) (\w*)(\w)" and concatenate them\.',
            "responses": [f" {rationale}\nAnswer: \\2\\4\nConfidence:\n- the answer is correct: 1.0\nscore: {confidence}"]}
    return {"model": {"backend": "fake", "rules": [rule]}, "method": {"name": "twt", "prompt_format": "fewshot"}, "samples": 1}


def test_dual_criteria_keeps_confident_outputs_then_the_most_different_pair_by_the_default_embedder(tmp_path):
    pytest.importorskip("sentence_transformers")
    teachers = [
        twt_teacher("Take the last letter of each word and join them.", 0.97),
        twt_teacher("Take the final letter of every word, then join the letters.", 0.99),
        twt_teacher("A Python loop over the words collects word[-1] into a string.", 0.96),
        twt_teacher("Unsure.", 0.5),
    ]
    recipe = validate_recipe({
        "task": {"name": "last_letters", "train_size": 4, "test_size": 2}, "teachers": teachers,
        "curation": {"filter": "dual_criteria"}, "student": STUDENT, "train": TRAIN,
        "evaluate": {"systems": ["distilled"]}, "distill": {"stages": ["full_reasoning"]},
    })
    report = Pipeline(recipe, tmp_path, progress=False).run()
    assert [t.name for t in recipe.teachers] == ["twt", "twt-2", "twt-3", "twt-4"]
    verdicts = read_jsonl(tmp_path / "curation" / "verdicts.jsonl")
    for v in verdicts:
        assert v["kept"] and v["reason"].startswith("3 of 4 outputs with confidence >= 0.95; most diverse pair")
        # The loop rationale differs most from the two near-paraphrases; the pair holds it and one of them.
        kept = Verdict.from_row(v).kept_outputs
        assert "twt-3" in {k.teacher for k in kept} and len(kept) == 2
    per_teacher = report["curation"][0]["per_teacher"]
    assert per_teacher["twt-4"]["kept"] == 0 and per_teacher["twt-3"]["kept"] == 4
    pairs = read_jsonl(tmp_path / "distill" / "distilled" / "stage1-full_reasoning.jsonl")
    assert len(pairs) == 8  # two rationales per input, as TwT trains on


def test_table5_log_probability_and_hard_rejection_sampling(tmp_path):
    """TwT Table 5's alternatives to confidence selection: the teachers' mean token log-probability
    (recorded on every call when a filter needs it), or agreement (self-consistency), each followed
    by the most diverse pair."""
    pytest.importorskip("sentence_transformers")
    teachers = [twt_teacher("Take the last letter of each word and join them.", 0.2),
                twt_teacher("A much longer rationale: go through the words one at a time, take the last letter of "
                            "each, and join the letters in order.", 0.2),
                twt_teacher("Join the final letters.", 0.2)]
    base = {"task": {"name": "last_letters", "train_size": 4, "test_size": 2}, "teachers": teachers,
            "student": STUDENT, "train": TRAIN, "evaluate": {"systems": ["distilled"]},
            "distill": {"stages": ["full_reasoning"]}}
    # The fake's scripted log-probability is -0.1 per token, the same mean for every output: a bar
    # above it rejects all, a bar below keeps all three, then the most diverse two.
    Pipeline(validate_recipe({**base, "curation": {"filter": {"name": "logprob", "min_mean_logprob": -0.05}}}),
             tmp_path / "strict", progress=False).run()
    strict = read_jsonl(tmp_path / "strict" / "curation" / "verdicts.jsonl")
    assert not any(v["kept"] for v in strict)
    assert all(v["reason"] == "no output with mean token log-probability >= -0.05 (3 outputs)" for v in strict)
    samples = read_jsonl(tmp_path / "strict" / "samples" / "twt.jsonl")
    assert all(c["logprob"] is not None and c["logprob"] < 0 for t in samples for c in t["calls"])

    Pipeline(validate_recipe({**base, "curation": {"filter": {"name": "logprob", "min_mean_logprob": -0.2}}}),
             tmp_path / "lenient", progress=False).run()
    lenient = read_jsonl(tmp_path / "lenient" / "curation" / "verdicts.jsonl")
    assert all(v["kept"] and len(Verdict.from_row(v).kept_outputs) == 2 and "most diverse pair" in v["reason"]
               for v in lenient)

    Pipeline(validate_recipe({**base, "curation": {"filter": ["self_consistency", "diverse_pair"]}}),
             tmp_path / "hard", progress=False).run()
    hard = read_jsonl(tmp_path / "hard" / "curation" / "verdicts.jsonl")
    assert all(v["kept"] and len(Verdict.from_row(v).kept_outputs) == 2 and v["filter"] == "self_consistency+diverse_pair"
               for v in hard)
    plain = read_jsonl(tmp_path / "hard" / "samples" / "twt.jsonl")
    assert all(c["logprob"] is None for t in plain for c in t["calls"])  # asked for only where a filter reads it
