"""Batch mode for an OpenAI-compatible teacher (s2distill/lm/batch.py), against a local fake of the
Files + Batch API (tests/openai_batch_server.py): submit and stop, collect on a rerun, wait in one
run, one round per call depth, partial failures and expiry resubmitting only what is missing,
cancelled and failed batches, a kill -9 between submit and collect, and the offline
`vllm run-batch` path."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from s2distill.cli.app import app
from s2distill.config.recipe import PriceConfig, validate_recipe
from s2distill.errors import BackendError
from s2distill.lm.batch import BatchLM, BatchSubmitted, Round
from s2distill.lm.cache import CachedLM
from s2distill.lm.configs import BatchSettings, model_config
from s2distill.lm.openai_api import OpenAICompatibleLM
from s2distill.pipeline import Pipeline
from s2distill.types import Request, Usage
from tests.openai_batch_server import OpenAIBatchServer

TRAIN, TEST, SAMPLES = 6, 3, 2


def last_letters_teacher(body: dict) -> str:
    """A right teacher for 2-step RaR on last letters: step 1 rephrases (keeping the quoted words),
    step 2 answers the rephrased question."""
    prompt = (body.get("prompt") or body["messages"][-1]["content"]).rstrip()
    words = [q for q in re.findall(r'"([^"]+)"', prompt) if not q.startswith("The answer")][-1].split()
    if prompt.endswith("unchanged from the original question."):
        return f'Concatenate the last letters of the words in "{" ".join(words)}".'
    return "The answer is " + "".join(w[-1] for w in words) + "."


def recipe(server, tmp_path: Path, *, steps: int = 2, batch=True, **extra):
    teacher_model = {"backend": "openai", "base_url": server.url, "model": "teacher", "batch": batch}
    return validate_recipe({
        "task": {"name": "last_letters", "train_size": TRAIN, "test_size": TEST},
        "teacher": {"model": teacher_model, "method": {"name": "rar", "steps": steps, "shots": 1}, "samples": SAMPLES},
        "student": {"model": {"backend": "tiny"}, "method": {"name": "direct", "shots": 1, "max_tokens": 4}},
        "evaluate": {"systems": ["system2", "distilled"]},
        "train": {"epochs": 1, "batch_size": 8, "lora_r": 2, "lora_alpha": 4},
        "cache": str(tmp_path / "cache.sqlite"),
        **extra,
    })


def requests_sent(server) -> list[str]:
    return [line["custom_id"] for batch in server.batches.values() for line in batch["lines"]]


# -- submit, stop, collect ---------------------------------------------------------------------------
def test_a_batched_teacher_submits_stops_and_each_rerun_collects_one_call_depth(tmp_path):
    """2-step RaR: the first run submits every first call (the samples' and System 2's evaluation's
    in one batch) and stops; the second collects them and submits the second calls; the third
    collects those and finishes. Nothing is asked twice and nothing goes live."""
    with OpenAIBatchServer(last_letters_teacher) as server:
        config = recipe(server, tmp_path)
        with pytest.raises(BatchSubmitted, match="submitted; rerun to collect: 15 requests in 1 batch"):
            Pipeline(config, tmp_path / "run", progress=False).run()
        [first] = Path(tmp_path / "run" / "batches").rglob("round-0001.json")
        assert json.loads(first.read_text())["batch_id"] == "batch_1"
        assert not list((tmp_path / "run").glob("samples/*.jsonl"))  # nothing sealed while waiting

        with pytest.raises(BatchSubmitted, match="15 requests in 1 batch"):  # the second calls
            Pipeline(config, tmp_path / "run", progress=False).run()
        report = Pipeline(config, tmp_path / "run", progress=False).run()

    # 6 inputs x 2 samples + 3 greedy test inputs, two calls each
    assert len(server.batches) == 2 and server.answered == 2 * (TRAIN * SAMPLES + TEST) == len(set(requests_sent(server)))
    assert server.live_calls == 0
    system2 = next(r for r in report["rows"] if r["system"] == "system2")
    assert system2["score"] == 1.0
    assert report["curation"][0]["kept"] == TRAIN


def test_a_run_that_may_wait_polls_until_its_batches_are_done_and_finishes_in_one_invocation(tmp_path):
    with OpenAIBatchServer(last_letters_teacher, finish_after=0.3) as server:
        config = recipe(server, tmp_path, batch={"wait": 60, "poll": 0.05})
        report = Pipeline(config, tmp_path / "run", progress=False).run()
    assert len(server.batches) == 2 and server.retrieves >= 4  # polled while in progress
    assert next(r for r in report["rows"] if r["system"] == "system2")["score"] == 1.0
    computed = {s["name"]: s["status"] for s in report["stages"]["ran"]}
    assert computed["samples:rar"] == "computed"  # the first pass's deferred attempt is not a stage of its own


def test_a_deadline_that_passes_stops_with_the_batches_recorded(tmp_path):
    with OpenAIBatchServer(last_letters_teacher, finish_after=30) as server:
        config = recipe(server, tmp_path, steps=1, batch={"wait": 0.2, "poll": 0.05})
        with pytest.raises(BatchSubmitted, match="15 requests in 1 batch"):
            Pipeline(config, tmp_path / "run", progress=False).run()
        with pytest.raises(BatchSubmitted, match=r"15 requests in 1 batch \(batch_1; 0 just submitted\)"):
            Pipeline(config, tmp_path / "run", progress=False).run()  # still running: nothing submitted again
    assert len(server.batches) == 1


# -- what comes back -----------------------------------------------------------------------------------
def test_partial_failures_and_expiry_resubmit_only_the_missing_requests_and_a_refusal_is_kept(tmp_path):
    failed_once: set[str] = set()

    def fail(custom_id, body):
        if custom_id not in failed_once and len(failed_once) < 2:
            failed_once.add(custom_id)
            return 500, "the server had an error"  # transient: asked again
        return None

    with OpenAIBatchServer(last_letters_teacher, fail=fail, outcomes=["expired:10"]) as server:
        config = recipe(server, tmp_path, steps=1, batch={"wait": 30, "poll": 0.01})
        report = Pipeline(config, tmp_path / "run", progress=False).run()
    batches = list(server.batches.values())
    first_ids = [line["custom_id"] for line in batches[0]["lines"]]
    assert len(first_ids) == TRAIN * SAMPLES + TEST
    resent = [line["custom_id"] for batch in batches[1:] for line in batch["lines"]]
    # expired: all but the first 10; failed with a 500: two of those 10
    assert sorted(resent) == sorted(set(first_ids[10:]) | failed_once)
    assert server.answered == len(first_ids)  # every request answered exactly once
    assert next(r for r in report["rows"] if r["system"] == "system2")["score"] == 1.0


def test_a_request_refused_in_a_batch_is_a_failed_sample_not_resubmitted_on_every_rerun(tmp_path):
    def refuse_one(custom_id, body):
        return (400, "context length exceeded") if body.get("seed") == 1 and '"' in body["prompt"][-80:] else None

    with OpenAIBatchServer(last_letters_teacher, fail=refuse_one) as server:
        config = recipe(server, tmp_path, steps=1, batch={"wait": 30, "poll": 0.01}, max_failures=0.6)
        report = Pipeline(config, tmp_path / "run", progress=False).run()
        rounds = len(server.batches)
        Pipeline(config, tmp_path / "run", progress=False, redo=["samples"]).run()  # replays: no new batch
    assert rounds == 1 and len(server.batches) == 1
    assert report["curation"][0]["per_teacher"]["rar"]["failed"] == TRAIN  # sample 1 of every input was refused


@pytest.mark.parametrize("outcome", ["cancelled", "failed"])
def test_a_cancelled_or_failed_batch_is_a_clear_error_and_deleting_its_round_submits_again(tmp_path, outcome):
    with OpenAIBatchServer(last_letters_teacher, outcomes=[outcome]) as server:
        config = recipe(server, tmp_path, steps=1)
        with pytest.raises(BatchSubmitted):
            Pipeline(config, tmp_path / "run", progress=False).run()
        with pytest.raises(BackendError, match=rf"batch batch_1 \(round 1, 15 requests\) was {outcome} by the provider"
                                               r".*delete .*round-0001.json and rerun") as error:
            Pipeline(config, tmp_path / "run", progress=False).run()
        Path(re.search(r"delete (\S+round-0001\.json)", str(error.value)).group(1)).unlink()
        with pytest.raises(BatchSubmitted, match="batch_2"):
            Pipeline(config, tmp_path / "run", progress=False).run()
        Pipeline(config, tmp_path / "run", progress=False).run()
    assert server.answered == TRAIN * SAMPLES + TEST


def test_the_command_line_says_submitted_and_exits_75(tmp_path):
    with OpenAIBatchServer(last_letters_teacher) as server:
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe(server, tmp_path, steps=1).model_dump(mode="json")))
        result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--no-progress"])
        assert result.exit_code == 75, result.output
        assert "submitted; rerun to collect" in " ".join(result.output.split())
        result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--no-progress"])
        assert result.exit_code == 0, result.output


# -- nothing lost, nothing paid twice ---------------------------------------------------------------------
def test_kill_9_while_waiting_then_a_rerun_collects_the_same_batch(tmp_path):
    """A run waiting on its batch is killed with SIGKILL; the rerun finds the batch recorded,
    submits nothing again, collects it and finishes."""
    with OpenAIBatchServer(last_letters_teacher, finish_after=2.0) as server:
        config = recipe(server, tmp_path, steps=1, batch={"wait": 600, "poll": 0.05})
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        child = subprocess.Popen([sys.executable, "-m", "s2distill.cli.app", "run", str(path), "--out",
                                  str(tmp_path / "run"), "--no-progress"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        record = tmp_path / "run" / "batches"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                json.loads(p.read_text()).get("batch_id") for p in record.rglob("round-*.json")):
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert len(server.batches) == 1 and server.answered == 0  # killed before the batch finished
        report = Pipeline(config, tmp_path / "run", progress=False).run()
    assert len(server.batches) == 1 and server.answered == TRAIN * SAMPLES + TEST
    assert next(r for r in report["rows"] if r["system"] == "system2")["score"] == 1.0


def test_a_batch_created_but_not_recorded_is_found_by_its_metadata_not_submitted_again(tmp_path, monkeypatch):
    """Killed between `batches.create` and writing its id: the round's tag in the batch's metadata
    finds it on the rerun (`batches.list`)."""
    with OpenAIBatchServer(lambda body: "ok") as server:
        live = OpenAICompatibleLM(base_url=server.url, model="m")
        lm = BatchLM(live, BatchSettings(), tmp_path / "batches", say=lambda text: None)
        requests = [Request(prompt=f"q{i}") for i in range(3)]
        lm.generate(requests)
        real_save = Round.save

        def save_then_die(self):
            if self.record.get("batch_id"):
                raise KeyboardInterrupt  # as if killed before the id reached the disk
            real_save(self)

        monkeypatch.setattr(Round, "save", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            lm.submit()
        monkeypatch.setattr(Round, "save", real_save)
        assert len(server.batches) == 1
        rerun = BatchLM(live, BatchSettings(), tmp_path / "batches", say=lambda text: None)
        [texts] = [[c[0].text for c in rerun.generate(requests)]]
    assert texts == ["ok", "ok", "ok"] and len(server.batches) == 1


def test_batch_and_live_share_the_cache(tmp_path):
    """Batch mode is a runtime setting: answers collected from a batch replay for the same model live."""
    with OpenAIBatchServer(last_letters_teacher) as server:
        requests = [Request(prompt=f'Take the last letters of "a{i} b{i}".', max_tokens=8) for i in range(4)]
        batched = model_config(backend="openai", base_url=server.url, model="teacher", batch=True)
        live = model_config(backend="openai", base_url=server.url, model="teacher")
        lm = BatchLM(batched.build(), batched.batch, tmp_path / "batches", say=lambda text: None)
        CachedLM(lm, tmp_path / "cache.sqlite").generate(requests)
        lm.submit()
        lm.new_pass()
        collected = CachedLM(lm, tmp_path / "cache.sqlite").generate(requests)
        replayed = CachedLM(live.build(), tmp_path / "cache.sqlite").generate(requests)
    assert [c[0].text for c in replayed] == [c[0].text for c in collected] == [f"The answer is {i}{i}." for i in range(4)]
    assert all(c[0].cached for c in replayed) and server.live_calls == 0


# -- offline: vllm run-batch ---------------------------------------------------------------------------------
def test_offline_mode_writes_a_vllm_run_batch_file_and_collects_its_output_file(tmp_path):
    """`mode: offline`: the run writes the batch file and the `vllm run-batch` command, and stops;
    an output file put beside it (here made by the fake's own completion bodies, in vLLM's shape) is
    collected on the rerun."""
    with OpenAIBatchServer(last_letters_teacher) as vllm:
        config = recipe(vllm, tmp_path, steps=1, batch={"mode": "offline"})
        with pytest.raises(BatchSubmitted, match=r"15 requests in 1 batch \(round 1 \(offline\)"):
            Pipeline(config, tmp_path / "run", progress=False).run()
        [round_file] = (tmp_path / "run" / "batches").rglob("round-0001.jsonl")
        lines = [json.loads(line) for line in round_file.read_text().splitlines()]
        assert {line["url"] for line in lines} == {"/v1/completions"} and all(line["method"] == "POST" for line in lines)
        output = round_file.with_name("round-0001.output.jsonl")
        output.write_text("".join(json.dumps({"id": f"vllm-{i}", "custom_id": line["custom_id"], "response": {
            "status_code": 200, "request_id": f"r{i}", "body": vllm.completion(line["url"], line["body"])},
            "error": None}) + "\n" for i, line in enumerate(lines)))
        report = Pipeline(config, tmp_path / "run", progress=False).run()
    assert vllm.batches == {} and next(r for r in report["rows"] if r["system"] == "system2")["score"] == 1.0


# -- cost ----------------------------------------------------------------------------------------------------
def test_the_report_prices_each_stage_with_the_batch_and_cache_multipliers_and_per_kept_input(tmp_path):
    """Prompt tokens the provider's cache served (2 per request here) cost `cached_prompt_multiplier`
    of a prompt token, a batched request `batch_multiplier` of a live one, and the samples' spend is
    divided over the inputs curation kept."""
    price = {"prompt": 2.0, "completion": 8.0, "cached_prompt_multiplier": 0.25, "batch_multiplier": 0.5}
    with OpenAIBatchServer(last_letters_teacher, cached_tokens=lambda body: 2) as server:
        config = recipe(server, tmp_path, steps=1, batch={"wait": 30, "poll": 0.01})
        config.teachers[0].price = PriceConfig(**price)
        report = Pipeline(config, tmp_path / "run", progress=False).run()
    spend = report["cost"]["teachers"]["rar"]
    samples, evaluation = spend["stages"]["samples:rar"], spend["stages"]["eval:system2-rar"]
    assert samples["outputs"] == TRAIN * SAMPLES and evaluation["outputs"] == TEST
    assert samples["cached_prompt_tokens"] == 2 * TRAIN * SAMPLES and evaluation["cached_prompt_tokens"] == 2 * TEST
    for stage in (samples, evaluation):
        uncached = stage["prompt_tokens"] - stage["cached_prompt_tokens"]
        expected = (uncached * 2.0 + stage["cached_prompt_tokens"] * 2.0 * 0.25 + stage["completion_tokens"] * 8.0) / 1e6 * 0.5
        assert stage["usd"] == pytest.approx(expected, abs=1e-6)
    assert spend["batched"] and spend["usd"] == pytest.approx(samples["usd"] + evaluation["usd"], abs=1e-6)
    kept = report["cost"]["per_kept_example"]["distilled"]
    assert kept["kept_inputs"] == TRAIN
    assert kept["usd_per_kept_input"] == pytest.approx(samples["usd"] / TRAIN, rel=1e-4)
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "| rar | samples:rar | 12 |" in markdown and "(batch)" in markdown
    assert "**Per kept training input**: distilled:" in markdown


def test_estimate_projects_the_runs_tokens_and_cost_from_a_live_pilot_that_the_run_then_reuses(tmp_path):
    price = {"prompt": 2.0, "completion": 8.0}
    with OpenAIBatchServer(last_letters_teacher) as server:
        config = recipe(server, tmp_path, steps=1, batch={"wait": 30, "poll": 0.01})
        config.teachers[0].price = PriceConfig(**price)
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
        result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--no-progress",
                                          "--estimate", "3"])
        assert result.exit_code == 0, result.output
        assert server.live_calls == 3 * SAMPLES and not server.batches  # the pilot goes live, samples only
        projection = json.loads((tmp_path / "run" / "estimate" / "estimate.json").read_text())
        report = Pipeline(config, tmp_path / "run", progress=False).run()
    assert "Projected from 3 pilot inputs" in result.output
    projected = {row["stage"]: row for row in projection["rows"]}
    actual = report["cost"]["teachers"]["rar"]["stages"]
    assert projected["samples:rar"]["outputs"] == TRAIN * SAMPLES and projected["eval:system2-rar"]["outputs"] == TEST
    for stage in ("samples:rar", "eval:system2-rar"):  # the fake's replies are alike: the projection is close
        assert projected[stage]["prompt_tokens"] == pytest.approx(actual[stage]["prompt_tokens"], rel=0.15)
    assert projection["per_kept_input"]["distilled"]["kept_share_in_pilot"] == 1.0
    # the pilot's 3 inputs x 2 samples were cached: the run's batch asked only for the rest
    assert server.answered == (TRAIN - 3) * SAMPLES + TEST


def test_output_lines_in_each_shape_read_as_answers_refusals_or_to_ask_again(tmp_path):
    """The provider's nested `response.body`, vLLM's bare `response`, a per-request 4xx (a refusal,
    kept), a 5xx and an expired line (asked again: None)."""
    lm = BatchLM(OpenAICompatibleLM(base_url="http://127.0.0.1:9/v1", model="m"), BatchSettings(), tmp_path,
                 say=lambda text: None)
    body = {"choices": [{"index": 0, "text": "hi", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 2}}}
    nested = lm._answer({"custom_id": "a", "response": {"status_code": 200, "body": body}})
    bare = lm._answer({"custom_id": "a", "response": body})
    assert nested == bare and (nested.text, nested.finish_reason, nested.usage) == ("hi", "length", Usage(3, 1, 2))
    refused = lm._answer({"custom_id": "a", "response": {"status_code": 400, "body": {"error": {"message": "too long"}}}})
    assert refused.error == "refused (400): too long"
    assert lm._answer({"custom_id": "a", "response": {"status_code": 500, "body": {"error": {"message": "x"}}}}) is None
    assert lm._answer({"custom_id": "a", "response": None, "error": {"code": "batch_expired"}}) is None


SWALLOWING_PROGRAM = '''
from s2distill.types import Request, Trace


def program(example, lm):
    try:
        reply = lm.generate([Request(prompt=f'Take the last letters of "{" ".join(example.inputs["words"])}".')])[0][0]
        answer = reply.text.split()[-1].rstrip(".")
    except Exception:  # a careless program: every error becomes "no answer"
        answer = "gave-up"
    return Trace(example.id, "mine", answer)
'''


def test_a_user_program_that_swallows_the_wait_still_waits_for_its_batch(tmp_path):
    """A user's program catching every exception must not turn "this request waits for a batch"
    into a final answer: the sample is deferred all the same, and answered once collected."""
    (tmp_path / "prog.py").write_text(SWALLOWING_PROGRAM)
    with OpenAIBatchServer(last_letters_teacher) as server:
        config = recipe(server, tmp_path, batch={"wait": 30, "poll": 0.01})
        config.teachers[0].method = validate_recipe({"task": {"name": "last_letters"}, "teacher": {
            "method": {"name": f"{tmp_path / 'prog.py'}:program"}}}).teachers[0].method
        Pipeline(config, tmp_path / "run", progress=False).run()
    answers = [json.loads(line)["answer"] for line in (tmp_path / "run" / "samples" / "rar.jsonl").read_text().splitlines()]
    assert len(answers) == TRAIN * SAMPLES and "gave-up" not in answers
