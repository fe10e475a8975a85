"""report.html, report.json's cost and provenance, and the kept training log.

The page is checked twice: its data and static tables from Python, and in a real headless
Chromium (Debian's `chromium`; these tests skip when it is not installed), where its script draws
the charts and the per-input browser and the filters, given in the URL's fragment, narrow the rows.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from s2distill.report.browser import dump_dom, find_chromium
from s2distill.config.recipe import PriceConfig, load_recipe
from s2distill.pipeline import Pipeline
from s2distill.report.cost import teacher_spend
from s2distill.report.provenance import sha256_folder
from s2distill.report.html import reason_kind, write_html_report
from s2distill.artifacts import read_jsonl
from tests.synthetic_run import synthetic_run

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "smoke.yaml")
    report = Pipeline(recipe, out, progress=False).run()
    return out, report


def _rows(dom: str) -> list[str]:
    """The ids of the browser's drawn rows."""
    body = re.search(r'<tbody id="rows">(.*?)</tbody>', dom, re.S).group(1)
    return re.findall(r'<tr class="item[^"]*" data-id="([^"]+)"', body)


def _count(dom: str) -> tuple[int, int]:
    found = re.search(r'id="count" data-matching="(\d+)" data-total="(\d+)"', dom)
    assert found, "the page's script did not run (no match count)"
    return int(found.group(1)), int(found.group(2))


# -- without a browser -----------------------------------------------------------------------------

def test_reasons_group_without_their_particulars():
    assert reason_kind("top answer 'nm' 3/4") == reason_kind("top answer 'xy' 3/4") == "top answer … 3/4"
    assert reason_kind("tie: 'a' and 'b' both 2/4") == "tie: … and … both 2/4"
    assert reason_kind("3 of 4 outputs with confidence >= 0.95; most diverse pair 0 and 2, cosine 0.41") == \
        "3 of 4 outputs with confidence >= 0.95"


def test_the_page_is_one_self_contained_file_with_the_runs_tables(smoke_run):
    out, report = smoke_run
    page = (out / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must load nothing from the network"
    assert "<link" not in page and "@import" not in page
    systems = re.search(r"<table id=systems>.*?</table>", page, re.S).group(0)
    assert systems.count("<tr class='sys-") == len(report["rows"]) == 3
    assert f"{100 * report['rows'][1]['score']:.1f}%" in systems
    curation = report["curation"][0]
    assert f"kept {curation['kept']} of {curation['inputs']} inputs" in page
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))
    assert len(data["train"]) == curation["inputs"] and len(data["test"]) == report["rows"][0]["n"]
    assert [s["key"] for s in data["systems"]] == ["system1", "system2-pal", "distilled-stage1"]


def test_curation_at_a_glance_counts_every_output_once_per_teacher(smoke_run):
    out, report = smoke_run
    page = (out / "report.html").read_text()
    table = re.search(r"<table class=curation.*?</table>", page, re.S).group(0)
    cells = [[int(x) for x in re.findall(r"<td class=n>(\d+)</td>", row)] for row in re.findall(r"<tr class=(?:kept|dropped)>.*?</tr>", table)]
    per_teacher = report["curation"][0]["per_teacher"]["pal"]
    assert sum(c[0] for c in cells) == report["curation"][0]["inputs"]  # inputs
    assert sum(c[1] for c in cells) == per_teacher["kept"]  # outputs kept
    assert sum(c[1] + c[2] for c in cells) == per_teacher["outputs"]  # kept + dropped = every output


def test_report_json_has_cost_and_provenance(smoke_run):
    out, report = smoke_run
    for row in report["rows"]:
        assert row["prompt_tokens_per_example"] > 0 and row["examples_per_second"] > 0
        # `seconds` is rounded to the millisecond: seconds / n is off by up to 0.5 ms / n (the fake LM's
        # evaluations take a few milliseconds, so a relative tolerance alone fails on a fast machine)
        assert row["seconds_per_example"] == pytest.approx(row["seconds"] / row["n"], rel=0.05, abs=0.0005 / row["n"] + 1e-6)
    samples = read_jsonl(out / "samples" / "pal.jsonl")
    spend = report["cost"]["teachers"]["pal"]
    assert spend["outputs"] == len(samples) == 96
    assert spend["prompt_tokens"] == sum(c["usage"]["prompt_tokens"] for t in samples for c in t["calls"])
    assert spend["completion_tokens"] == sum(c["usage"]["completion_tokens"] for t in samples for c in t["calls"])
    assert report["cost"]["total_usd"] is None  # the smoke recipe gives no price
    prov = report["provenance"]
    assert set(prov["versions"]) == {"s2distill", "torch", "transformers", "trl", "peft"}
    assert prov["data_files"], "the task's data files are hashed"
    from s2distill.paths import data_dir

    for name, digest in prov["data_files"].items():
        assert hashlib.sha256((data_dir() / name).read_bytes()).hexdigest() == digest
    weights = out / "student" / "distilled" / "stage1" / "weights"
    assert prov["weights"] == {"student/distilled/stage1/weights": sha256_folder(weights)}
    assert "prompt tokens / example" in (out / "report.md").read_text()


def test_teacher_spend_in_money_when_priced(smoke_run):
    out, report = smoke_run
    teacher = SimpleNamespace(name="pal", price=PriceConfig(prompt=2.0, completion=10.0))
    spend = teacher_spend(out, [teacher])
    pal = spend["teachers"]["pal"]
    prompt = pal["prompt_tokens"] + pal["evaluation_prompt_tokens"]
    completion = pal["completion_tokens"] + pal["evaluation_completion_tokens"]
    assert pal["usd"] == pytest.approx((2.0 * prompt + 10.0 * completion) / 1e6)
    assert spend["total_usd"] == pytest.approx(pal["usd"])


def test_the_loss_history_survives_the_checkpoints(smoke_run):
    out, _ = smoke_run
    stage = out / "student" / "distilled" / "stage1"
    assert not (stage / "checkpoints").exists()
    steps = [r for r in read_jsonl(stage / "train_log.jsonl") if "loss" in r]
    # smoke: 16 pairs, batch 8, 2 epochs -> 4 optimizer steps, each logged
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all(0.0 <= r["mean_token_accuracy"] <= 1.0 and r["loss"] > 0 for r in steps)


def test_report_to_is_validated_and_passed_to_trl(tmp_path):
    import importlib.util

    from s2distill.config.recipe import TrainConfig
    from s2distill.lm.tiny import tiny_model_dir
    from s2distill.training.sft import build_trainer, train_student
    from s2distill.training.log import keep_history

    assert TrainConfig(report_to="none").report_to == []
    assert TrainConfig(report_to="tensorboard").report_to == ["tensorboard"]
    pairs = [{"prompt": "Q: a b\nA:", "completion": " ab\n"}] * 2
    trainer = build_trainer(pairs, tiny_model_dir(), tmp_path, TrainConfig(epochs=1, batch_size=2, report_to=[]))
    assert trainer.args.report_to == []

    class TensorBoardCallback:  # stands in for transformers' own, found by name
        logging_dir = None

    tensorboard = TensorBoardCallback()
    trainer.callback_handler.callbacks.append(tensorboard)
    keep_history(trainer, tmp_path / "stage1")
    assert tensorboard.logging_dir == str(tmp_path / "stage1" / "tensorboard")

    config = TrainConfig(epochs=1, batch_size=2, lora_r=2, lora_alpha=4, report_to=["tensorboard"])
    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        with pytest.raises(ValueError, match="tensorboard is not installed"):
            train_student(pairs, tiny_model_dir(), tmp_path / "tb", config)  # before any training
        assert not (tmp_path / "tb" / "weights").exists()
    else:
        train_student(pairs, tiny_model_dir(), tmp_path / "tb", config)
        assert any((tmp_path / "tb" / "tensorboard").rglob("events.out.tfevents*"))
        assert read_jsonl(tmp_path / "tb" / "train_log.jsonl")


def test_a_resumed_training_drops_the_steps_it_logs_again(tmp_path):
    from s2distill.training.log import _history_callback_class

    log = tmp_path / "train_log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3)))
    callback = _history_callback_class()(log)
    state = SimpleNamespace(global_step=2, is_world_process_zero=True, epoch=1.0)
    callback.on_train_begin(None, state, None)
    callback.on_log(None, SimpleNamespace(global_step=3, is_world_process_zero=True, epoch=1.5), None, logs={"loss": 0.5})
    assert [(r["step"], r["loss"]) for r in read_jsonl(log)] == [(1, 1.0), (2, 1.0), (3, 0.5)]


# -- in Chromium -----------------------------------------------------------------------------------

@needs_chromium
def test_chromium_shows_the_test_split_side_by_side(smoke_run):
    out, report = smoke_run
    dom = dump_dom(out / "report.html")
    n = report["rows"][0]["n"]
    assert _count(dom) == (n, n)
    assert len(_rows(dom)) == n
    assert dom.count("<circle") >= 3, "one point per system in the score-against-tokens chart"
    assert 'data-stage="distilled/stage1 answer_only"' in dom, "the loss chart of the one training stage"
    system2_right = sum(r["correct"] > 0 for r in read_jsonl(out / "eval" / "system2-pal.jsonl"))
    dom = dump_dom(out / "report.html", "split=test&sys=1&outcome=right")
    assert _count(dom)[0] == system2_right == len(_rows(dom))


@needs_chromium
def test_chromium_filters_training_inputs_by_verdict_and_search(smoke_run):
    out, report = smoke_run
    verdicts = read_jsonl(out / "curation" / "verdicts.jsonl")
    dropped = [v["example_id"] for v in verdicts if not v["kept"]]
    everything = dump_dom(out / "report.html", "split=train")
    assert _count(everything) == (len(verdicts), len(verdicts))
    narrowed = dump_dom(out / "report.html", "split=train&verdict=dropped")
    assert _count(narrowed) == (len(dropped), len(verdicts)) and 0 < len(dropped) < len(verdicts)
    assert sorted(_rows(narrowed)) == sorted(dropped)
    first = read_jsonl(out / "inputs" / "train.jsonl")[0]
    searched = dump_dom(out / "report.html", f"split=train&q={first['inputs']['words'][1]}")
    assert first["id"] in _rows(searched) and _count(searched)[0] < len(verdicts)


@needs_chromium
def test_chromium_opens_an_input_with_its_samples_calls_and_training_pair(smoke_run):
    out, _ = smoke_run
    kept = next(v for v in read_jsonl(out / "curation" / "verdicts.jsonl") if v["kept"])
    dom = dump_dom(out / "report.html", f"split=train&open={kept['example_id']}")
    detail = re.search(r'<tbody id="rows">.*?(<tr class="detail">.*?</tr>)', dom, re.S).group(1)
    assert detail.count('class="sample') >= 4 + 1, "four teacher samples and the training pair"
    assert "training pair" in detail and "prompt + " in detail and "generated tokens" in detail
    assert kept["reason"].replace("'", "&#39;") in detail or kept["reason"] in detail


@needs_chromium
def test_chromium_pages_thousands_of_inputs_quickly(tmp_path):
    report = synthetic_run(tmp_path, train=3000, test=1000)
    expected = report.pop("expected")
    page = write_html_report(tmp_path, report)
    assert page.stat().st_size < 6_000_000, "shared prompt prefixes are stored once"
    start = time.perf_counter()
    dom = dump_dom(page, "split=train&verdict=dropped")
    seconds = time.perf_counter() - start
    assert _count(dom) == (expected["dropped"], 3000)
    assert len(_rows(dom)) == 50, "one page of rows is drawn, not thousands"
    script_ms = float(re.search(r'<body[^>]*data-script-ms="([\d.]+)"', dom).group(1))
    assert script_ms < 3000 and seconds < 60
    fixed = dump_dom(page, "split=test&outcome=fixed")
    broke = dump_dom(page, "split=test&outcome=broke")
    assert _count(fixed)[0] == expected["fixed"] and _count(broke)[0] == expected["broke"]
