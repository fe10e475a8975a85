"""The classes of fault issue 10 found, each now a clear one-line error or a detected-and-redone
artifact, never a traceback or a silent wrong result. Fast: no model is trained here.

Server faults (Retry-After, non-completion bodies, refusals, max_failures) are in
test_lm_openai.py; the sandbox's escapes in test_sandbox_escapes.py.
"""

from __future__ import annotations

import errno
import json
import math
import os

import pytest
from typer.testing import CliRunner

import s2distill.pipeline as pipeline_module
from s2distill import sandbox
from s2distill.cli.app import app
from s2distill.config.recipe import RecipeError, load_recipe, validate_recipe
from s2distill.errors import DataError, RunFolderError, SandboxUnavailable, TrainingError, explain_os_error
from s2distill.lm import FakeLM
from s2distill.lm.cache import CachedLM
from s2distill.pipeline import Pipeline
from s2distill.artifacts import read_json, read_jsonl, sealed, write_json, write_jsonl
from s2distill.runlock import lock_folder
from s2distill.tasks.data import read_jsonl as read_data_jsonl
from s2distill.types import Request

BASE = {"task": {"name": "last_letters", "train_size": 4, "test_size": 2},
        "teacher": {"model": {"backend": "fake"}, "method": {"name": "cot"}},
        "student": {"model": {"backend": "fake"}}}


def _recipe(tmp_path, text: str = "task: {name: last_letters}\n"):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


# -- recipes: one line naming the file or field, and the bound -----------------------------------
def test_a_recipe_that_is_a_folder_or_not_utf8_is_a_clear_error(tmp_path):
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(RecipeError, match="is a folder, not a YAML file"):
        load_recipe(tmp_path / "folder.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RecipeError, match="is not UTF-8 text"):
        load_recipe(latin)


def test_an_override_with_unbalanced_brackets_is_a_clear_error(tmp_path):
    with pytest.raises(RecipeError, match=r"override 'evaluate.systems=\[system1': the value is not valid YAML"):
        load_recipe(_recipe(tmp_path), ["evaluate.systems=[system1"])


@pytest.mark.parametrize(("override", "message"), [
    ("teacher.model.rules=[]", "teacher.model.rules: unknown key"),  # the fake backend's field on the embedded one
    ("teacher.model.backend=vllm", "teacher.model: backend must be one of embedded, hf, openai, tiny, fake"),
    ("train.epochs=.inf", "train.epochs: Input should be a finite number"),
    ("train.learning_rate=.inf", "train.learning_rate: Input should be a finite number"),
    ("train.learning_rate=.nan", "train.learning_rate: Input should be a finite number"),
    ("teacher.samples=100000", "teacher.samples: Input should be less than or equal to 1024"),
    ("teacher.samples=1.0e+30", "teacher.samples: 1e[+]30 is far too large; counts are bounded .*at most 1024"),
    ("task.test_size=1.0e+11", "task.test_size: Input should be less than or equal to 100000"),
    ("evaluate.systems=[]", "evaluate.systems: List should have at least 1 item"),
    ("teacher.model={backend: fake, rules: [{pattern: '(unclosed', responses: [x]}]}", r"rules\[0\].pattern '\(unclosed' is not a valid regular expression"),
])
def test_sizes_rates_and_rules_are_checked_at_load(tmp_path, override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(_recipe(tmp_path), [override])


# -- data files ----------------------------------------------------------------------------------
def test_a_damaged_or_truncated_data_file_is_a_clear_error(tmp_path):
    root = tmp_path / "data"
    (root / "x").mkdir(parents=True)
    (root / "x" / "rows.jsonl").write_text('{"a": 1}\n{"a": 2, "b": [1, 2\n')
    with pytest.raises(DataError, match=r"x/rows.jsonl .* line 2 is not valid JSON .* truncated or damaged"):
        read_data_jsonl("x/rows.jsonl", root)
    (root / "SHA256SUMS").write_text("0" * 64 + "  x/rows.jsonl\n")
    from s2distill.tasks.data import _expected_hashes, _verified_file

    _verified_file.cache_clear(), _expected_hashes.cache_clear()  # the first read cached "no sums listed"
    with pytest.raises(DataError, match="does not match SHA256SUMS .* restore it from its source"):
        read_data_jsonl("x/rows.jsonl", root)


# -- the run folder: sealed artifacts, private temporary files, a lock ---------------------------
@pytest.mark.parametrize("damage", ["cut at a line boundary", "emptied", "edited", "seal deleted"])
def test_a_damaged_artifact_no_longer_matches_its_seal(tmp_path, damage):
    path = tmp_path / "samples" / "t.jsonl"
    write_jsonl(path, [{"i": i} for i in range(5)])
    assert sealed(path) and len(read_jsonl(path)) == 5
    lines = path.read_text().splitlines(keepends=True)
    if damage == "cut at a line boundary":
        path.write_text("".join(lines[:3]))
    elif damage == "emptied":
        path.write_text("")
    elif damage == "edited":
        path.write_text("".join(lines).replace('"i": 4', '"i": 9'))
    else:
        path.with_name(path.name + ".seal").unlink()
    assert not sealed(path)


def test_temporary_files_are_private_to_their_writer_and_never_left_behind(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append(os.path.basename(src)), real_replace(src, dst)))
    write_json(tmp_path / "a.json", {"x": 1})
    assert all(f".{os.getpid()}." in name and name.endswith(".partial") for name in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.json.seal"]
    assert read_json(tmp_path / "a.json") == {"x": 1}


def test_a_truncated_artifact_is_redone_not_used(tmp_path):
    from rich.console import Console

    from s2distill.stages.folder import ROWS, RunFolder
    from s2distill.stages.specs import InputsSpec

    folder = RunFolder(tmp_path, Console(quiet=True))
    rows = [{"i": i} for i in range(4)]
    stage = lambda: folder.stage("inputs", "inputs/train.jsonl", spec=InputsSpec(content="n4"), inputs={},
                                 compute=lambda: rows, codec=ROWS)
    first = stage()
    artifact = tmp_path / "inputs" / "train.jsonl"
    artifact.write_text(artifact.read_text().splitlines(keepends=True)[0])  # one input left
    again = stage()
    assert len(again.value) == len(first.value) == 4 and len(read_jsonl(artifact)) == 4
    assert [r.status for r in folder.log] == ["computed", "redone"] and "truncated or edited" in folder.log[1].reason


def test_a_damaged_artifact_read_directly_is_a_clear_error(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(RunFolderError, match=r"x.jsonl line 2 is not valid JSON .* delete it"):
        read_jsonl(tmp_path / "x.jsonl")


def test_a_second_run_into_a_locked_folder_is_told_the_first_ones_pid(tmp_path):
    held = lock_folder(tmp_path / "run")
    with pytest.raises(RunFolderError, match=rf"in use by another s2distill run \(PID {os.getpid()}\)"):
        lock_folder(tmp_path / "run")
    with pytest.raises(RunFolderError, match=rf"in use .*PID {os.getpid()}"):
        Pipeline(validate_recipe(BASE), tmp_path / "run", progress=False).run()
    held.release()
    lock_folder(tmp_path / "run").release()  # free again once released


def test_out_that_is_a_file_or_unwritable_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        lock_folder(tmp_path / "file")
    with pytest.raises(RunFolderError, match="a part of the path is a file"):
        lock_folder(tmp_path / "file" / "run")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro"))

    monkeypatch.setattr(type(tmp_path), "mkdir", read_only)
    with pytest.raises(RunFolderError, match=r"cannot create or write the run folder .*Read-only file system.*--out"):
        lock_folder(tmp_path / "ro")


def test_artifacts_without_a_fingerprint_are_redone_not_trusted(tmp_path):
    write_jsonl(tmp_path / "inputs" / "train.jsonl", [])  # sealed, but says nothing of what it was made from
    report = Pipeline(validate_recipe(BASE), tmp_path, progress=False).run()
    assert {"name": "inputs", "status": "redone", "reason": "made by an older version of s2distill"}.items() <= \
        next(r for r in report["stages"]["ran"] if r["name"] == "inputs").items()
    assert len(read_jsonl(tmp_path / "inputs" / "train.jsonl")) == 4


def test_a_corrupted_cache_says_what_it_is_and_how_to_rebuild_it(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(RunFolderError, match=r"cache.sqlite is not a usable completion cache .* delete it"):
        CachedLM(FakeLM(), path)
    fresh = CachedLM(FakeLM(default="hi"), tmp_path / "other.sqlite")
    assert fresh.generate([Request(prompt="x")])[0][0].text == "hi"


def test_disk_full_and_read_only_are_one_line_at_the_command_line(tmp_path, monkeypatch):
    assert "disk is full while writing /r/x" in explain_os_error(OSError(errno.ENOSPC, "No space left on device", "/r/x"))
    assert "cannot write /r (Read-only file system)" in explain_os_error(OSError(errno.EROFS, "Read-only file system", "/r"))

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "samples" / "pal.jsonl"))

    monkeypatch.setattr(pipeline_module.Pipeline, "run", full)
    result = CliRunner().invoke(app, ["run", str(_recipe(tmp_path)), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "the disk is full while writing" in result.output and "run the same command again" in result.output


# -- training ------------------------------------------------------------------------------------
def test_non_finite_loss_or_weights_stop_training_with_a_message():
    pytest.importorskip("transformers")
    import torch

    from s2distill.training.guard import FiniteTraining

    guard = FiniteTraining(learning_rate=1e30)
    state = type("State", (), {"global_step": 4})()
    guard.on_log(None, state, None, logs={"loss": 2.5, "grad_norm": 1.0})  # finite: fine
    with pytest.raises(TrainingError, match=r"non-finite loss at step 4 .* lower train.learning_rate \(now 1e\+30\)"):
        guard.on_log(None, state, None, logs={"loss": math.nan})
    model = torch.nn.Linear(2, 2)
    guard.on_train_end(None, state, None, model=model)
    with torch.no_grad():
        model.weight[0, 0] = math.inf
    with pytest.raises(TrainingError, match=r"non-finite weight \(weight\)"):
        guard.on_train_end(None, state, None, model=model)


def test_max_length_shorter_than_every_example_is_a_clear_error():
    pytest.importorskip("transformers")
    from s2distill.training.guard import check_pairs_fit

    class Trainer:
        processing_class = staticmethod(lambda text: {"input_ids": text.split()})
        train_dataset = (1,)

    pairs = [{"prompt": "a b c d e f", "completion": " g"}, {"prompt": "a b c d", "completion": " e"}]
    check_pairs_fit(pairs, Trainer(), max_length=5)
    with pytest.raises(TrainingError, match=r"train.max_length=4 is shorter .* at least 5"):
        check_pairs_fit(pairs, Trainer(), max_length=4)


# -- model-written code needs a guard ------------------------------------------------------------
def test_without_a_boundary_a_pal_recipe_stops_before_any_work_unless_it_opts_in(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "boundary_available", lambda: False)
    recipe = {**BASE, "teacher": {"model": {"backend": "fake"}, "method": {"name": "pal"}}}
    with pytest.raises(SandboxUnavailable, match="sandbox.allow_weak_guard=true"):
        Pipeline(validate_recipe(recipe), tmp_path / "run", progress=False).run()
    assert not (tmp_path / "run").exists()
    weak = validate_recipe({**recipe, "sandbox": {"allow_weak_guard": True}})
    assert "audit hook only" in sandbox.describe_guard(weak.sandbox.policy())
    result = CliRunner().invoke(app, ["run", str(_recipe(tmp_path, json.dumps(recipe))), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "allow_weak_guard" in result.output and "Traceback" not in result.output
