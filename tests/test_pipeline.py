"""The whole run on the smoke recipe: artifacts, report, resume, and errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from s2distill.cli.app import app
from s2distill.config.recipe import load_recipe
from s2distill.lm import FakeLM
from s2distill.pipeline import Pipeline
from s2distill.artifacts import read_jsonl
from s2distill.types import Verdict


@pytest.fixture
def smoke(recipes_dir):
    return load_recipe(recipes_dir / "smoke.yaml")


def test_smoke_run_writes_every_artifact_and_the_report(smoke, tmp_path):
    report = Pipeline(smoke, tmp_path, progress=False).run()
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["rows"] == report["rows"]
    assert [r["system"] for r in saved["rows"]] == ["system1", "system2", "distilled"]
    for row in saved["rows"]:
        assert {"system", "method", "task", "metric", "score", "n", "tokens_per_example"} <= set(row)
        assert row["n"] == 8 and 0.0 <= row["score"] <= 1.0
    system2 = saved["rows"][1]
    assert system2["score"] == 1.0 and system2["tokens_per_example"] > saved["rows"][0]["tokens_per_example"]
    # Curation: A-H first words tie 2/4 in the fake and are dropped, the rest kept 3/4.
    verdicts = read_jsonl(tmp_path / "curation" / "verdicts.jsonl")
    inputs = {r["id"]: r["inputs"]["words"] for r in read_jsonl(tmp_path / "inputs" / "train.jsonl")}
    for v in verdicts:
        dropped = inputs[v["example_id"]][0][0] in "ABCDEFGH"
        assert v["kept"] is not dropped, v
        assert v["reason"]
    [curation] = saved["curation"]
    assert curation == {**curation, "variant": "distilled", "inputs": 24, "kept": sum(v["kept"] for v in verdicts)}
    assert 0 < curation["kept"] < 24
    # Kept outputs are the samples that gave the majority answer, counted per teacher.
    typed = [Verdict.from_row(v) for v in verdicts]
    kept_outputs = [ref for v in typed if v.kept for ref in v.kept_outputs]
    assert all(ref.teacher == "pal" and ref.answer == v.answer for v in typed if v.kept for ref in v.kept_outputs)
    assert all(v.kept_outputs == () and "kept" not in v.meta for v in typed if not v.kept)
    assert curation["per_teacher"] == {"pal": {"outputs": 96, "parseable": 88, "kept": len(kept_outputs)}}
    pairs = read_jsonl(tmp_path / "distill" / "distilled" / "stage1-answer_only.jsonl")
    assert len(pairs) == curation["kept"]  # one answer-only pair per kept input, however many samples agreed
    assert all(p["prompt"].endswith("A:") and p["completion"].endswith("\n") for p in pairs)
    assert saved["lm"]["calls"] == 24 * 4 + 8 * 3 + 24 and saved["lm"]["cached"] == 0  # + the audit's System 1
    assert "| distilled | answer_only | direct, 2-shot |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and saved["plot"]
    assert "![score against tokens per example](report.png)" in (tmp_path / "report.md").read_text()
    # Generation never saw a label: the unlabeled inputs file holds ids and inputs only.
    assert all(set(row) == {"id", "inputs"} for row in read_jsonl(tmp_path / "inputs" / "train.jsonl"))

    again = Pipeline(smoke, tmp_path, progress=False).run()
    assert again["lm"] == {"calls": 0, "cached": 0, "faults": {}}  # every stage was done: no model call at all
    assert again["rows"] == report["rows"]


def crashing_after(calls: int):
    """An LM factory whose fake LMs fail after `calls` completions: a run killed mid-stage."""
    def factory(config, *, adapter=None):
        lm = config.build(adapter=adapter)
        if isinstance(lm, FakeLM):
            lm.fail_after = calls
        return lm
    return factory


def test_a_run_killed_during_generation_resumes_without_redoing_work(smoke, tmp_path):
    with pytest.raises(RuntimeError, match="simulated failure"):
        Pipeline(smoke, tmp_path, progress=False, lm_factory=crashing_after(40)).run()
    assert not (tmp_path / "samples" / "pal.jsonl").exists()  # the sampling stage did not finish

    report = Pipeline(smoke, tmp_path, progress=False).run()
    # The crashed run finished some batches of programs; those completions come from the cache.
    assert report["lm"]["cached"] >= 8
    # Every teacher sample once, the three evaluations, the audit's System 1: nothing asked twice.
    assert report["lm"]["calls"] + report["lm"]["cached"] == 24 * 4 + 8 * 3 + 24
    assert report["rows"][1]["score"] == 1.0


def test_cli_runs_a_recipe_and_reports_bad_ones(recipes_dir, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["run", str(recipes_dir / "smoke.yaml"), "--out", str(tmp_path / "run"), "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert "| system2 | pal |" in ok.output
    bad = runner.invoke(app, ["run", str(recipes_dir / "smoke.yaml"), "teacher.smaples=3", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "teacher.smaples: unknown key" in bad.output
    missing = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    tasks = runner.invoke(app, ["tasks"])
    assert tasks.exit_code == 0 and "mbpp" in tasks.output and "pass@1" in tasks.output
    listed = runner.invoke(app, ["methods"])
    assert listed.exit_code == 0 and "pal" in listed.output and "direct" in listed.output


def test_system2_by_majority_of_k_samples_is_charged_the_tokens_of_all_k(recipes_dir, tmp_path):
    greedy = Pipeline(load_recipe(recipes_dir / "smoke.yaml", ["evaluate.systems=[system2]"]), tmp_path / "greedy", progress=False).run()
    voted = Pipeline(load_recipe(recipes_dir / "smoke.yaml", ["evaluate.systems=[system2]", "evaluate.system2_samples=4"]),
                     tmp_path / "voted", progress=False).run()
    [one], [four] = greedy["rows"], voted["rows"]
    assert four["majority_of"] == 4 and "maj@4" in (tmp_path / "voted" / "report.md").read_text()
    assert four["tokens_per_example"] > 3 * one["tokens_per_example"]  # four sampled programs per example
    # The fake's samples: 3 of 4 right for most inputs, a 2-2 tie (first answer kept) for A-H words.
    assert four["score"] >= 0.5 and four["n"] == 8
    records = read_jsonl(tmp_path / "voted" / "eval" / "system2-pal.jsonl")
    assert all(r["calls"] == 4 for r in records)


def test_majority_at_gives_maj_k_rows_for_every_system_each_charged_all_k_samples(recipes_dir, tmp_path):
    """Yu et al. 2024's Table 3: maj@k for System 1, System 2 and the distilled model, several k."""
    report = Pipeline(load_recipe(recipes_dir / "smoke.yaml", ["evaluate.majority_at=[3, 1]"]), tmp_path, progress=False).run()
    rows = [(r["system"], r.get("majority_of")) for r in report["rows"]]
    assert rows == [("system1", None), ("system1", 1), ("system1", 3), ("system2", None), ("system2", 1), ("system2", 3),
                    ("distilled", None), ("distilled", 1), ("distilled", 3)]
    by = {(r["system"], r.get("majority_of")): r for r in report["rows"]}
    assert by[("system2", 3)]["tokens_per_example"] > 2 * by[("system2", 1)]["tokens_per_example"]
    assert by[("system2", 3)]["teacher"] == "pal" and "distilled weights" in by[("distilled", 3)]["model"]
    assert all(r["calls"] == 3 for r in read_jsonl(tmp_path / "eval" / "distilled-stage1-maj3.jsonl"))
    assert "maj@3" in (tmp_path / "report.md").read_text()


def test_a_rerun_in_a_relative_folder_redoes_no_stage(recipes_dir, tmp_path, monkeypatch):
    """Artifacts are found again when --out is relative (as `runs/NAME` is): training is not redone."""
    import s2distill.training.sft as train_module
    from s2distill.paths import data_dir

    monkeypatch.setenv("S2DISTILL_DATA", str(data_dir()))  # found from the project folder, before leaving it
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(recipes_dir / "smoke.yaml")
    Pipeline(recipe, "runs/smoke", progress=False).run()
    monkeypatch.setattr(train_module, "train_student", lambda *a, **k: pytest.fail("training was redone"))
    again = Pipeline(recipe, "runs/smoke", progress=False).run()
    assert again["lm"] == {"calls": 0, "cached": 0, "faults": {}}
