"""The distilled cascade: its arithmetic, its threshold chosen on validation inputs in a run, its
report rows, and `predict --cascade` / `load_cascade` / export, with a student whose confidence is
scripted (the fake LM's `logprob`)."""

from __future__ import annotations

import json
import math
import re

import pytest
from typer.testing import CliRunner

from s2distill.artifacts import read_jsonl
from s2distill.cli.app import app
from s2distill.config.recipe import RecipeError, load_recipe
from s2distill.lm import FakeLM
from s2distill.pipeline import Pipeline
from s2distill.scoring.cascade import ROUTE_ALL, auroc, cascade_curve, cascade_point, choose_threshold
from s2distill.student.cascade import load_cascade


def _records(confidences, right, tokens=3):
    return [{"id": f"x{i}", "answer": "ab", "correct": ok, "completion_tokens": tokens, "confidence": c}
            for i, (c, ok) in enumerate(zip(confidences, right))]


STUDENT = _records([0.1 * k for k in range(1, 11)], [k >= 5 for k in range(1, 11)])  # right from 0.5 up
SYSTEM2 = [{"id": f"x{i}", "answer": "ab", "correct": True, "completion_tokens": 30} for i in range(10)]


def test_the_curve_goes_from_the_student_alone_to_system2_alone():
    curve = cascade_curve(STUDENT, SYSTEM2)
    assert len(curve) == 11 and curve[-1].threshold == ROUTE_ALL
    assert (curve[0].score, curve[0].tokens_per_example, curve[0].routed) == (0.6, 3.0, 0.0)  # nothing routed
    assert (curve[-1].score, curve[-1].tokens_per_example, curve[-1].routed) == (1.0, 33.0, 1.0)  # student + System 2
    at_half = cascade_point(STUDENT, SYSTEM2, 0.5)
    assert (at_half.score, at_half.tokens_per_example, at_half.routed) == (1.0, 3.0 + 4 * 30 / 10, 0.4)
    assert [p.tokens_per_example for p in curve] == sorted(p.tokens_per_example for p in curve)


def test_the_rules_pick_the_fewest_tokens_that_keep_the_share_or_the_best_score_in_the_budget():
    curve = cascade_curve(STUDENT, SYSTEM2)
    kept = choose_threshold(curve, 1.0, keep=0.95)
    assert math.isclose(kept.threshold, 0.5) and kept.score == 1.0  # 0.4 would keep a wrong answer: 90%
    budget = choose_threshold(curve, 1.0, token_budget=10)
    assert math.isclose(budget.threshold, 0.3) and math.isclose(budget.score, 0.8)  # 3 + 2 x 3 tokens
    assert choose_threshold(curve, 1.0, token_budget=1).routed == 0.0  # nothing fits: the fewest tokens
    unreachable = choose_threshold(cascade_curve(STUDENT, [{**r, "correct": False} for r in SYSTEM2]), 1.0, keep=0.95)
    assert math.isclose(unreachable.score, 0.6)  # the best score there is, at the fewest tokens
    with pytest.raises(ValueError, match="exactly one rule"):
        choose_threshold(curve, 1.0, keep=0.9, token_budget=5)


def test_an_unparseable_answer_always_goes_to_system2_however_sure():
    student = [*STUDENT[:9], {**STUDENT[9], "answer": None, "confidence": 1.0, "correct": False}]
    assert cascade_point(student, SYSTEM2, 0.0).routed == 0.1
    assert 1.0 not in {p.threshold for p in cascade_curve(student, SYSTEM2)}  # not a threshold of its own


def test_auroc_measures_how_well_confidence_separates_right_from_wrong():
    assert auroc(STUDENT) == 1.0
    assert auroc(_records([0.9, 0.1], [False, True])) == 0.0
    assert auroc(_records([0.5, 0.5, 0.5], [True, False, True])) == 0.5
    assert auroc(_records([0.2, 0.4, 0.3], [True, True, True])) is None  # no wrong answer to separate
    assert auroc(_records([0.2, 0.8, 0.5, 0.9], [False, True, True, False])) == 0.5


# -- in a run, with a scripted student ---------------------------------------------------------------
QUESTION = re.compile(r'in "(\w+) (\w+)"')


def _scripted_student(request, k):
    """Right (and sure) when the first word starts with A-M, else a wrong answer (and unsure)."""
    first, second = QUESTION.findall(request.prompt)[-1]
    right = (first[-1] + second[-1]).lower()
    return f" {right}\n" if first[0] <= "M" else " zz\n"


def _confidence(request, text):
    return math.log(0.97) if text.strip() != "zz" else math.log(0.2)


def scripted_students(config, *, adapter=None):
    """Models as the recipe builds them, but a trained student is the scripted one."""
    if adapter is not None:
        return FakeLM(responder=_scripted_student, logprob=_confidence, name="scripted-student")
    return config.build(adapter=adapter)


@pytest.fixture
def cascaded(recipes_dir):
    return load_recipe(recipes_dir / "smoke.yaml", overrides=["evaluate.cascade={keep: 0.95, validation_size: 20}",
                                                             "task.test_size=16"])


@pytest.fixture
def smoke_recipe(recipes_dir):
    return load_recipe(recipes_dir / "smoke.yaml")


def test_a_run_chooses_the_threshold_on_validation_inputs_and_reports_the_cascade(cascaded, tmp_path):
    report = Pipeline(cascaded, tmp_path, progress=False, lm_factory=scripted_students).run()
    calibration = json.loads((tmp_path / "cascade" / "distilled-stage1.json").read_text())
    assert calibration["validation"]["n"] == 20 and calibration["rule"] == {"keep": 0.95}
    assert math.isclose(calibration["threshold"], 0.97)  # routes exactly the unsure, wrong answers
    assert calibration["validation"]["auroc"] == 1.0
    own = read_jsonl(tmp_path / "eval" / "distilled-stage1.jsonl")
    assert {round(r["confidence"], 2) for r in own} <= {0.97, 0.2}  # every student answer carries its confidence
    [row] = [r for r in report["rows"] if r["system"] == "cascade"]
    unsure = sum(r["confidence"] < 0.5 for r in own)
    assert row["score"] == 1.0 and row["n"] == 16 and math.isclose(row["routed"], unsure / 16)
    system2 = next(r for r in report["rows"] if r["system"] == "system2")
    assert math.isclose(row["tokens_per_example"], 3.0 + unsure / 16 * system2["tokens_per_example"], rel_tol=0.2)
    markdown = (tmp_path / "report.md").read_text()
    assert "## The distilled cascade" in markdown and "0.97" in markdown and "◀" in markdown
    assert "Cascade" in (tmp_path / "report.html").read_text() and report["cascade_plot"]

    again = Pipeline(cascaded, tmp_path, progress=False, lm_factory=scripted_students).run()
    assert again["lm"]["calls"] == 0 and again["rows"] == report["rows"]  # the threshold is a stage, kept


def test_predict_with_the_cascade_hands_the_unsure_inputs_to_system2(cascaded, tmp_path):
    Pipeline(cascaded, tmp_path, progress=False, lm_factory=scripted_students).run()
    cascade = load_cascade(tmp_path)
    cascade.student._lm = FakeLM(responder=_scripted_student, logprob=_confidence)  # the scripted student, again
    results = cascade.predict([{"words": ["Ada", "Lovelace"]}, {"words": ["Zoe", "Smith"]}])
    sure, unsure = results
    assert (sure["answered_by"], sure["answer"], sure["tokens"]) == ("student", "ae", 1)  # the fake counts words
    assert math.isclose(sure["confidence"], 0.97)
    assert unsure["answered_by"] == "system2" and unsure["student_answer"] == "zz"
    assert unsure["answer"] == "eh" and unsure["tokens"] > 10  # the fake teacher's program, run in the sandbox


def test_the_cli_predicts_with_the_cascade_and_says_when_a_run_has_none(cascaded, smoke_recipe, tmp_path):
    Pipeline(cascaded, tmp_path / "with", progress=False, lm_factory=scripted_students).run()
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "with"), "--cascade", "--no-progress",
                                      "--text", 'Take the last letters of the words in "Ada Lovelace" and concatenate them.'])
    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert line["answered_by"] == "system2" and line["answer"] == "ae"  # the tiny student's answer never parses

    seal = tmp_path / "with" / "cascade" / "distilled-stage1.json.seal"  # as if the student had been retrained since
    record = json.loads(seal.read_text())
    record["made_from"]["inputs"]["weights"] = "content:0123456789abcdef"
    seal.write_text(json.dumps(record))
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "with"), "--cascade", "--text", "x"])
    assert result.exit_code == 2 and "other weights" in result.output

    Pipeline(smoke_recipe, tmp_path / "without", progress=False).run()
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "without"), "--cascade", "--text", "x"])
    assert result.exit_code == 2 and "evaluate.cascade" in result.output


def test_export_writes_the_cascade_beside_the_student_and_it_loads_from_there(cascaded, tmp_path):
    from s2distill.student.export import export_model

    Pipeline(cascaded, tmp_path / "run", progress=False, lm_factory=scripted_students).run()
    folder = export_model(tmp_path / "run", tmp_path / "export")
    settings = json.loads((folder / "cascade.json").read_text())
    assert math.isclose(settings["threshold"], 0.97) and settings["system2"]["method"]["name"] == "pal"
    assert settings["system2"]["model"]["backend"] == "fake" and "curve" not in settings["validation"]
    cascade = load_cascade(folder)
    assert cascade.student.weights == folder and math.isclose(cascade.threshold, 0.97)


def test_a_cascade_needs_a_task_with_a_validation_split_and_one_rule(recipes_dir, tmp_path):
    with pytest.raises(RecipeError, match="keep or token_budget, not both"):
        load_recipe(recipes_dir / "smoke.yaml", overrides=["evaluate.cascade={keep: 0.9, token_budget: 5}"])
    with pytest.raises(RecipeError, match="no teacher named 'nobody'"):
        load_recipe(recipes_dir / "smoke.yaml", overrides=["evaluate.cascade={teacher: nobody}"])
    recipe = load_recipe(recipes_dir / "smoke.yaml", overrides=["evaluate.cascade={}", "evaluate.systems=[distilled]"])
    with pytest.raises(RecipeError, match="must hold both"):
        Pipeline(recipe, tmp_path, progress=False)
    assert load_recipe(recipes_dir / "smoke.yaml", overrides=["evaluate.cascade={}"]).evaluate.cascade.keep == 0.95


def test_the_validation_split_is_neither_training_nor_test_and_says_when_it_runs_out():
    from s2distill.errors import DataError
    from s2distill.tasks.coin_flip import CoinFlip, CoinFlipConfig
    from s2distill.tasks.last_letters import LastLetters, LastLettersConfig

    task = LastLetters(LastLettersConfig(test_size=50, train_size=64))
    validation = task.validation(100)
    words = [tuple(item.example.inputs["words"]) for item in validation]
    assert len(set(words)) == 100 and validation == task.validation(100)  # distinct, and the same every time
    assert not set(words) & {tuple(item.example.inputs["words"]) for item in task.labeled("test")}
    trained = {w for item in task.labeled("train") for w in item.example.inputs["words"]}
    assert not trained & {w for pair in words for w in pair}  # names the student never trained on
    assert all(item.target == "".join(w[-1] for w in item.example.inputs["words"]).lower() for item in validation)
    assert len(CoinFlip(CoinFlipConfig(test_source="generated")).validation(20)) == 20
    with pytest.raises(DataError, match="distinct validation inputs"):
        LastLetters(LastLettersConfig(words=1, test_size=50)).validation(1000)  # the test pool has 755 names
