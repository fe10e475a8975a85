"""Fingerprinted stages: a changed recipe redoes exactly the stages that depend on the change,
counted in model calls, and the completion cache is shared across run folders and processes."""

from __future__ import annotations

import multiprocessing
import sqlite3

from typer.testing import CliRunner

from s2distill.cli.app import app
from s2distill.config.recipe import load_recipe
from s2distill.lm import CachedLM, FakeLM
from s2distill.pipeline import Pipeline
from s2distill.types import Request

SAMPLES = 24 * 4  # the smoke recipe's teacher samples
TEST = 8  # its test inputs, each evaluated greedily once per system
TRAIN = 24  # its training inputs, each asked once of System 1 for the curation audit (stages/audit.py)


def _run(recipes_dir, out, *overrides, **kwargs):
    return Pipeline(load_recipe(recipes_dir / "smoke.yaml", list(overrides)), out, progress=False, **kwargs).run()


def _ran(report) -> dict[str, str]:
    return {r["name"]: r["status"] for r in report["stages"]["ran"]}


def test_changing_train_epochs_retrains_and_reevaluates_the_student_only(recipes_dir, tmp_path):
    first = _run(recipes_dir, tmp_path)
    assert first["lm"]["calls"] == SAMPLES + 3 * TEST + TRAIN
    again = _run(recipes_dir, tmp_path, "train.epochs=3")
    assert _ran(again) == {"train:distilled/stage1": "redone", "eval:distilled-stage1": "redone"}
    assert again["lm"] == {"calls": TEST, "cached": 0, "faults": {}}  # the new student's answers, nothing else
    reason = next(r["reason"] for r in again["stages"]["ran"] if r["name"] == "train:distilled/stage1")
    assert reason == "train.epochs: 2.0 -> 3.0"
    assert again["stages"]["this_invocation"]["kept"] >= 5  # inputs, samples, curation, set, System 1 and 2


def test_runtime_settings_redo_nothing(recipes_dir, tmp_path):
    _run(recipes_dir, tmp_path)
    again = _run(recipes_dir, tmp_path, "workers=3", "student.model.batch_rows=2", "max_failures=0.5")
    assert _ran(again) == {} and again["lm"] == {"calls": 0, "cached": 0, "faults": {}}


def test_a_curation_change_redoes_curation_and_what_follows_but_no_sampling(recipes_dir, tmp_path):
    _run(recipes_dir, tmp_path)
    again = _run(recipes_dir, tmp_path, "curation.vote=plurality")
    assert set(_ran(again)) == {"curation:distilled", "distill:distilled/stage1-answer_only", "train:distilled/stage1",
                                "eval:distilled-stage1", "audit:distilled"}
    assert again["lm"]["calls"] == TEST  # the retrained student's evaluation only


def test_redo_forces_a_stage_whose_calls_then_come_from_the_cache(recipes_dir, tmp_path):
    _run(recipes_dir, tmp_path)
    again = _run(recipes_dir, tmp_path, redo=["samples"])
    assert _ran(again) == {"samples:pal": "redone"}  # same fingerprint: nothing downstream changes
    assert again["lm"] == {"calls": 0, "cached": SAMPLES, "faults": {}}


def test_a_second_run_folder_replays_the_samples_already_paid_for(recipes_dir, tmp_path):
    _run(recipes_dir, tmp_path / "one")
    other = _run(recipes_dir, tmp_path / "two", "train.epochs=3")
    assert other["lm"]["cached"] == SAMPLES + 2 * TEST + TRAIN  # samples, System 1 and System 2 from the shared cache
    assert other["lm"]["calls"] == TEST  # only the differently trained student is asked


def _write_many(path: str, worker: int, rows: int) -> None:
    lm = CachedLM(FakeLM(default=f"w{worker}"), path, chunk_rows=1)
    for i in range(rows):  # one commit per completion: as many write transactions as possible
        lm.generate([Request(prompt=f"{worker}-{i}", temperature=0.7, n=2)])
    lm.close()


def test_several_processes_share_one_cache_without_database_is_locked(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    CachedLM(FakeLM(), path).close()  # created once, as a first run would
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(path, w, 60)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 4 * 60 * 2


def test_the_cache_command_shows_entries_per_model_and_clears_one(recipes_dir, tmp_path, monkeypatch):
    _run(recipes_dir, tmp_path / "run")
    runner = CliRunner()
    shown = runner.invoke(app, ["cache"])
    assert shown.exit_code == 0, shown.output
    assert "fake" in shown.output and "tiny" in shown.output and f"{SAMPLES + 3 * TEST + TRAIN} entries" in shown.output
    from s2distill.lm.cache import cache_summary
    from s2distill.pipeline import default_cache

    fake = next(name for name in cache_summary(default_cache(load_recipe(recipes_dir / "smoke.yaml")))["models"]
                if name.startswith("fake:"))
    cleared = runner.invoke(app, ["cache", "--clear", "--model", fake])
    assert cleared.exit_code == 0, cleared.output
    assert f"removed {SAMPLES + TEST} entries" in cleared.output  # the teacher's samples and System 2
    assert f"{2 * TEST + TRAIN} entries" in runner.invoke(app, ["cache"]).output  # the tiny student's remain
    unknown = runner.invoke(app, ["cache", "--clear", "--model", "nope"])
    assert unknown.exit_code == 2 and "no entries of model 'nope'" in unknown.output


def test_a_run_folders_own_cache_from_an_older_version_joins_the_shared_one(recipes_dir, tmp_path, monkeypatch):
    _run(recipes_dir, tmp_path / "old")
    shared = tmp_path / "completions.sqlite"
    shared.rename(tmp_path / "old" / "cache.sqlite")  # as an older version kept it: in the run folder
    for seal in (tmp_path / "old").rglob("*.seal"):
        seal.write_text('{"bytes": 0}')  # and artifacts without fingerprints: every stage is redone
    again = _run(recipes_dir, tmp_path / "old")
    # Every stage redone, yet only a retrained student that differs from the old one would be asked again.
    assert again["lm"]["calls"] + again["lm"]["cached"] == SAMPLES + 3 * TEST + TRAIN
    assert again["lm"]["cached"] >= SAMPLES + 2 * TEST + TRAIN and again["stages"]["this_invocation"]["redone"] >= 6
    assert (tmp_path / "old" / "cache.sqlite.imported").exists() and not (tmp_path / "old" / "cache.sqlite").exists()


def test_redo_of_an_unknown_stage_kind_is_refused_before_any_work(recipes_dir, tmp_path):
    import pytest

    from s2distill.errors import RunFolderError

    with pytest.raises(RunFolderError, match="--redo trian: no such stage"):
        _run(recipes_dir, tmp_path / "run", redo=["trian"])
    assert not (tmp_path / "run").exists()


def test_a_folder_of_the_previous_stage_code_redoes_each_stage_once_saying_why(recipes_dir, tmp_path):
    """A run folder sealed by the previous version (stage code 1, hand-written fingerprints) is
    redone stage by stage with the reason printed, then kept; no stage trusts an old seal."""
    import json

    _run(recipes_dir, tmp_path)
    for seal in tmp_path.rglob("*.seal"):
        data = json.loads(seal.read_text())
        if "made_from" in data:  # as the previous version wrote it
            data["made_from"] = {"stage": data["made_from"]["stage"], "code": 1, "settings": "hand-written"}
            data["fingerprint"] = "0123456789abcdef"
            seal.write_text(json.dumps(data))
    again = _run(recipes_dir, tmp_path)
    assert set(_ran(again).values()) == {"redone"} and len(_ran(again)) == 10  # the audit's two stages too
    assert all("older version of s2distill (stage code 1 -> 2" in r["reason"] for r in again["stages"]["ran"])
    assert again["lm"]["calls"] <= TEST  # the samples replayed from the cache: at most the retrained student asked
    assert _ran(_run(recipes_dir, tmp_path)) == {}


def test_a_stage_that_reads_the_recipe_while_computing_is_an_error(recipes_dir, tmp_path):
    """Every setting a stage uses reaches it through its spec: the recipe is locked while it computes."""
    import pytest

    from s2distill.stages.context import RecipeReadInCompute
    from s2distill.stages.folder import ROWS
    from s2distill.stages.specs import InputsSpec

    pipeline = Pipeline(load_recipe(recipes_dir / "smoke.yaml"), tmp_path, progress=False)
    ctx = pipeline.ctx
    with pytest.raises(RecipeReadInCompute, match="stage inputs:probe read the recipe"):
        ctx.stage("inputs:probe", "probe.jsonl", spec=InputsSpec(content="x"), inputs={},
                  compute=lambda: [{"epochs": ctx.recipe.train.epochs}], codec=ROWS)
    assert ctx.recipe.train.epochs == 2  # readable again once the stage is done


def test_an_edited_user_program_redoes_the_samples_it_wrote(recipes_dir, tmp_path):
    """A `file.py:function` teacher's source is part of its fingerprint: editing the file redoes
    its samples and its System 2 evaluation, and a rerun without an edit keeps them."""
    program = tmp_path / "teacher_program.py"
    source = ("from s2distill.types import Trace\n\n"
              "def answer(example, lm):\n    return Trace(example.id, 'mine', {answer!r})\n")
    program.write_text(source.format(answer="xy"))
    overrides = [f"teacher={{method: {{name: '{program}:answer'}}, samples: 2}}", "evaluate.systems=[system2, distilled]"]
    out = tmp_path / "run"
    _run(recipes_dir, out, *overrides)
    assert _ran(_run(recipes_dir, out, *overrides)) == {}
    program.write_text(source.format(answer="yz"))
    redone = _ran(_run(recipes_dir, out, *overrides))
    assert redone.keys() >= {"samples:answer", "eval:system2-answer"}
    assert all(status == "redone" for status in redone.values())
