"""Bad inputs of every kind, each a clear one-line error or a named, counted failure: never a
traceback, never a silent wrong result. The run-folder cases share one finished smoke run (fake
teacher, tiny LoRA student), each test working on its own copy.

The faults of recipes, data files, artifacts and servers are in test_reliability.py and
test_lm_openai.py; a user's data files in test_custom_task.py.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import shutil

import pytest
from typer.testing import CliRunner

import s2distill
from s2distill.artifacts import read_json, read_jsonl, sealed
from s2distill.cli.app import INTERNAL_ERROR, app
from s2distill.config.recipe import RecipeError, load_recipe, validate_recipe
from s2distill.methods.runner import TooManyFailures
from s2distill.pipeline import Pipeline
from tests.conftest import ROOT

SMOKE = ROOT / "recipes" / "smoke.yaml"
QUESTION = 'Take the last letters of the words in "Ada Byron" and concatenate them.'


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke recipe run once; tests copy it (`run_copy`) and damage their copy."""
    out = tmp_path_factory.mktemp("smoke-run")
    s2distill.run(SMOKE, out=out)
    return out


@pytest.fixture
def run_copy(smoke_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(smoke_run, copy)
    return copy


def cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, code: int = 2) -> str:
    """The error line of a command that failed as it should: `code`, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


# -- 1. a user's answer parser -------------------------------------------------------------------
PARSER = '''
def parse(text):
    if "boom" in text:
        raise ValueError("cannot read " + text.split()[-1])
    if "number" in text:
        return 7
    return text.split()[-1]
'''


def test_a_user_parser_that_raises_or_returns_a_non_string_makes_that_output_unparseable(tmp_path):
    (tmp_path / "myparser.py").write_text(PARSER)
    rows = [{"q": f"question {name}?", "y": "fine"} for name in ("one", "two", "three")]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = validate_recipe({
        "task": {"name": "custom", "path": str(tmp_path / "d.jsonl"), "test_path": str(tmp_path / "d.jsonl"),
                 "question": "q", "label": "y", "answer": f"{tmp_path / 'myparser.py'}:parse"},
        "teacher": {"model": {"backend": "fake", "rules": [
            {"pattern": "question one", "responses": ["Final answer: boom"]},
            {"pattern": "question two", "responses": ["Final answer: number"]},
            {"pattern": "question three", "responses": ["Final answer: fine"]}]},
            "method": {"name": "cot", "shots": 0}},
        "student": {"model": {"backend": "fake"}},
        "evaluate": {"systems": ["system2"]},
    })
    report = Pipeline(recipe, tmp_path / "run", progress=False).run()  # before: the ValueError ended the run
    records = {r["id"]: r for r in read_jsonl(tmp_path / "run" / "eval" / "system2-cot.jsonl")}
    assert records["test1"]["answer"] is None
    assert "answer parser" in records["test1"]["error"] and "ValueError: cannot read boom" in records["test1"]["error"]
    assert "myparser.py, line 4" in records["test1"]["error"]
    assert records["test2"]["answer"] is None  # before: "7", silently
    assert "returned int 7; it must return a string or None" in records["test2"]["error"]
    assert records["test3"]["answer"] == "fine" and records["test3"]["error"] is None
    assert report["rows"][0]["unparseable"] == 2


# -- 2. the disk filling up ----------------------------------------------------------------------
def test_a_full_disk_while_training_is_one_line_and_leaves_nothing_half_written(run_copy, monkeypatch):
    import s2distill.training.sft as sft

    stage = run_copy / "student" / "distilled" / "stage1"
    weights_before = sealed(stage / "weights")

    def fills_the_disk(pairs, model_path, output_dir, config, *, init_adapter=None, soft_loss=None):
        done = output_dir / "checkpoints" / "checkpoint-1"
        done.mkdir(parents=True)
        (done / "trainer_state.json").write_text("{}")  # a complete checkpoint: kept for resuming
        (output_dir / "checkpoints" / "checkpoint-2").mkdir()
        (output_dir / "checkpoints" / "checkpoint-2" / "model.safetensors").write_bytes(b"half")
        (output_dir / "weights.partial").mkdir()
        (output_dir / "weights.partial" / "adapter_model.safetensors").write_bytes(b"half")
        with (output_dir / "train_log.jsonl").open("a") as log:  # the loss history, its last line cut
            log.write('{"step": 99, "loss": 0.5}\n{"step": 100, "lo')
        # safetensors reports a full disk as its own error type, not an OSError
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                           '"No space left on device" })')

    monkeypatch.setattr(sft, "run_training", fills_the_disk)
    result = cli("run", SMOKE, "--out", run_copy, "--redo", "train", "--no-progress")
    line = one_line_error(result)
    assert "the disk is full while writing" in line and str(stage) in line and "run the same command again" in line
    assert not (stage / "weights.partial").exists() and not (stage / "checkpoints" / "checkpoint-2").exists()
    assert (stage / "checkpoints" / "checkpoint-1").exists()
    assert weights_before and sealed(stage / "weights")  # the previous weights, untouched
    from s2distill.training.log import read_history

    assert read_history(stage)[-1] == {"step": 99, "loss": 0.5}  # the cut line left out (before: JSONDecodeError)


@pytest.mark.parametrize("filling", ["report.png", "report.md", "recipe.yaml"])
def test_a_full_disk_while_writing_the_report_keeps_the_previous_report(run_copy, monkeypatch, filling):
    before = {name: (run_copy / name).read_bytes() for name in ("report.md", "report.png", "recipe.yaml")}
    real_open = io.open

    class HalfWritten:
        """A file on a disk that fills up: half of what is written reaches it, then ENOSPC."""

        def __init__(self, file):
            self.file = file

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")  # write() names no file

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    def full_disk_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        name = str(file)
        if any(c in mode for c in "wxa") and filling in name:
            return HalfWritten(handle)
        return handle

    monkeypatch.setattr(io, "open", full_disk_open)
    monkeypatch.setattr(builtins, "open", full_disk_open)
    result = cli("run", SMOKE, "--out", run_copy, "--no-progress")  # every stage kept: only the report is written
    monkeypatch.undo()
    line = one_line_error(result)
    assert f"the disk is full while writing {run_copy / filling}:" in line
    for name, content in before.items():  # before: the file cut in half, and kept as the report
        assert (run_copy / name).read_bytes() == content, name
    assert not [p for p in run_copy.iterdir() if p.name.endswith(".partial")]


# -- 3. predict --out, and damaged weights --------------------------------------------------------
def test_predict_out_naming_a_folder_is_refused(run_copy, tmp_path):
    (tmp_path / "folder").mkdir()
    line = one_line_error(cli("predict", run_copy, "--text", QUESTION, "--out", tmp_path / "folder", "--no-progress"))
    assert "--out" in line and "is a folder" in line and "predictions.jsonl" in line  # before: IsADirectoryError


@pytest.mark.parametrize("damage", ["edited", "truncated", "unsealed"])
def test_predict_and_export_refuse_damaged_weights(run_copy, tmp_path, damage):
    weights = run_copy / "student" / "distilled" / "stage1" / "weights"
    adapter = weights / "adapter_model.safetensors"
    data = bytearray(adapter.read_bytes())
    if damage == "edited":  # same size: before, predict answered with the changed weights, silently
        data[-100] ^= 0xFF
        adapter.write_bytes(bytes(data))
    elif damage == "truncated":  # before: a SafetensorError traceback
        adapter.write_bytes(bytes(data[:1000]))
    else:  # a training that stopped before its seal was written
        (weights.parent / "weights.seal").unlink()
    assert not sealed(weights) or damage == "unsealed"
    predicted = one_line_error(cli("predict", run_copy, "--text", QUESTION, "--no-progress"))
    exported = one_line_error(cli("export", run_copy, "--to", tmp_path / "model"))
    for line in (predicted, exported):
        assert str(weights) in line and "s2distill run" in line and "retrain" in line
        assert ("unfinished" if damage == "unsealed" else "damaged") in line
    assert not (tmp_path / "model").exists()
    with pytest.raises(ValueError, match="damaged|unfinished"):
        s2distill.load_student(run_copy)


# -- 4. export --to a file, and export-data of a damaged set -------------------------------------
def test_export_and_export_data_to_an_existing_file_are_refused(run_copy, tmp_path):
    target = tmp_path / "taken"
    target.write_text("mine")
    for command in ("export", "export-data"):  # before: FileExistsError / NotADirectoryError tracebacks
        line = one_line_error(cli(command, run_copy, "--to", target))
        assert f"--to {target} is an existing file" in line
    assert target.read_text() == "mine"


@pytest.mark.parametrize("artifact", ["distill/distilled/stage1-answer_only.jsonl", "curation/verdicts.jsonl"])
def test_export_data_of_a_set_cut_short_is_refused_naming_it(run_copy, tmp_path, artifact):
    path = run_copy / artifact
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))  # cut at a line: valid JSONL
    line = one_line_error(cli("export-data", run_copy, "--to", tmp_path / "data"))
    assert str(path) in line and "damaged" in line and "nothing was exported" in line
    assert not (tmp_path / "data").exists()  # before: 3 rows exported as the whole set


# -- 5. a user's program that starts processes or evaluates code ---------------------------------
PROGRAM = '''
import os
import subprocess

from s2distill.types import Call, Request, Trace


def program(example, lm):
    [completion] = lm.generate([Request(prompt="Q: " + example.id, max_tokens=4)])[0]
    if example.id == "train-1":
        os.system("true")
    elif example.id == "train-2":
        eval("1 + 1")
    elif example.id == "train-3":
        subprocess.run(["true"], check=False)
    elif example.id == "train-4":
        try:  # refused even when the program catches the refusal
            os.system("true")
        except Exception:
            pass
    elif example.id == "train-5":
        raise KeyError("no such field")
    elif example.id == "train-6":
        return completion.text  # not a Trace
    return Trace(example.id, "mine", completion.text, [Call("Q", completion.text, completion.usage)])
'''


def user_program_recipe(tmp_path, max_failures: float) -> dict:
    (tmp_path / "prog.py").write_text(PROGRAM)
    return {
        "task": {"name": "last_letters", "train_size": 8, "test_size": 2},
        # two samples that disagree: curation keeps nothing, so no student is trained
        "teacher": {"model": {"backend": "fake", "rules": [{"pattern": "Q: ", "responses": ["ab", "cd"]}]},
                    "method": {"name": f"{tmp_path / 'prog.py'}:program"}, "samples": 2},
        "student": {"model": {"backend": "fake"}},
        "max_failures": max_failures,
    }


def test_a_user_program_calling_os_system_eval_or_subprocess_is_a_counted_failed_sample(tmp_path):
    recipe = validate_recipe(user_program_recipe(tmp_path, max_failures=0.8))
    report = Pipeline(recipe, tmp_path / "run", progress=False).run()  # before: KeyError ended the run
    samples = {(r["example_id"], r["sample"]): r for r in read_jsonl(tmp_path / "run" / "samples" / "program.jsonl")}
    failed = {i for i, r in samples.items() if "failed" in r["meta"]}
    assert {i for i, _ in failed} == {f"train-{n}" for n in range(1, 7)} and len(failed) == 12
    reasons = {i: samples[(i, 0)]["error"] for i, _ in failed}
    assert "called os.system" in reasons["train-1"] and "s2distill.sandbox.run_python" in reasons["train-1"]
    assert "called eval/exec" in reasons["train-2"]  # before: these three ran in the s2distill process
    assert "called subprocess" in reasons["train-3"]
    assert "called os.system" in reasons["train-4"]
    assert "raised KeyError: 'no such field' (prog.py, line 22)" in reasons["train-5"]
    assert "returned str, not a Trace" in reasons["train-6"]
    assert samples[("train-0", 0)]["answer"] == "ab" and samples[("train-7", 1)]["answer"] == "cd"
    assert report["curation"][0]["per_teacher"]["program"]["failed"] == 12
    assert "**Failed samples**" in (tmp_path / "run" / "report.md").read_text()
    # Past max_failures the run stops with a line naming the inputs and what the program did.
    strict = validate_recipe(user_program_recipe(tmp_path, max_failures=0.5))
    with pytest.raises(TooManyFailures, match=r"12 of 16 samples failed \(12 in the user's program\).*train-1: user "
                                              r"program .* called os.system"):
        Pipeline(strict, tmp_path / "strict", progress=False).run()


# -- 6. a student left by an earlier recipe -------------------------------------------------------
def test_predict_and_export_use_the_last_stage_of_the_runs_recipe_not_a_leftover(run_copy, tmp_path):
    from s2distill.student.predict import student_weights

    stage1 = run_copy / "student" / "distilled" / "stage1"
    shutil.copytree(stage1, stage1.with_name("stage2"))  # as an earlier two-stage recipe left it
    shutil.copy(stage1 / "weights.seal", stage1.with_name("stage2") / "weights.seal")
    assert student_weights(run_copy) == stage1 / "weights"  # before: stage2, silently (export reads this too)
    student = s2distill.load_student(run_copy)
    assert student.weights == stage1 / "weights" and "stage1" in student.where and "last of the run's recipe" in student.where
    result = cli("predict", run_copy, "--text", QUESTION, "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"student: {stage1 / 'weights'} (stage1 of distilled" in result.output
    # A baseline the run's recipe does not train is not offered, even if an earlier recipe left one.
    shutil.copytree(run_copy / "student" / "distilled", run_copy / "student" / "no_filter")
    line = one_line_error(cli("predict", run_copy, "--text", QUESTION, "--variant", "no_filter"))
    assert "'no_filter' is not trained by the run's recipe" in line and "distilled" in line


# -- 7. a baseline listed twice -------------------------------------------------------------------
def test_a_baseline_listed_twice_is_an_error_at_load():
    with pytest.raises(RecipeError, match="baselines: 'no_filter' listed more than once; list each baseline once"):
        load_recipe(SMOKE, ["baselines=[no_filter, standard_kd, no_filter]"])


# -- 8. an input field of the wrong type ----------------------------------------------------------
def test_predict_names_a_field_of_the_wrong_type(run_copy, tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"words": "Ada Lovelace"}\n')
    line = one_line_error(cli("predict", run_copy, "--input", inputs, "--no-progress"))
    # before: the question was built from the string's letters and answered
    assert f"{inputs}: row 1: field 'words' must be a list of strings" in line and '["Ada", "Lovelace"]' in line
    inputs.write_text('{"words": ["Ada", 3]}\n')
    assert "item 2 is int 3" in one_line_error(cli("predict", run_copy, "--input", inputs, "--no-progress"))


# -- 9. anything unexpected -----------------------------------------------------------------------
def test_an_unexpected_error_is_one_line_and_its_traceback_a_file(tmp_path, monkeypatch):
    import s2distill.pipeline as pipeline_module

    def broken(ctx):
        raise ZeroDivisionError("a bug in a stage")

    monkeypatch.setattr(pipeline_module, "inputs_stage", broken)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"task": {"name": "last_letters", "train_size": 4, "test_size": 2},
                                  "teacher": {"model": {"backend": "fake"}, "method": {"name": "cot"}},
                                  "student": {"model": {"backend": "fake"}}}))
    result = cli("run", recipe, "--out", tmp_path / "run", "--no-progress")
    line = one_line_error(result, code=INTERNAL_ERROR)  # before: the traceback, exit 1
    assert INTERNAL_ERROR not in (0, 1, 2)
    assert line.startswith("error: internal error (ZeroDivisionError: a bug in a stage); the traceback is saved in ")
    assert line.endswith("; please report it")
    saved = line.removeprefix("error: internal error (ZeroDivisionError: a bug in a stage); the traceback is saved in "
                              ).removesuffix("; please report it")
    text = open(saved).read()
    assert "Traceback (most recent call last)" in text and "in broken" in text and "ZeroDivisionError" in text
    # A usage error keeps click's own message and code.
    assert cli("run").exit_code == 2


def test_the_report_of_a_finished_run_still_reads_back(smoke_run):
    """The shared run itself is whole: the tests above damaged copies only."""
    assert sealed(smoke_run / "report.json") and read_json(smoke_run / "report.json")["name"] == "smoke"
