"""Using a distilled student after its run: predict through its training prompt, the merged export
that answers the same, the exported data, and the Python API."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

import s2distill
from s2distill.cli.app import app
from s2distill.config.recipe import load_recipe
from s2distill.lm.hf import HFLM
from s2distill.artifacts import read_jsonl
from s2distill.student.prompt import PROMPT_FILE, render
from s2distill.types import Request


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The smoke recipe run once through the Python API (fake teacher, tiny LoRA student)."""
    from tests.conftest import ROOT

    out = tmp_path_factory.mktemp("smoke-run")
    report = s2distill.run(ROOT / "recipes" / "smoke.yaml", out=out)
    assert isinstance(report, s2distill.Report) and report.out == out
    assert report.row("distilled")["n"] == 8 and report.row("system2")["score"] == 1.0
    assert "| distilled |" in report.markdown and report["task"] == "last_letters"
    return out


@pytest.fixture(scope="module")
def student(run_dir):
    loaded = s2distill.load_student(run_dir)
    yield loaded
    loaded.close()


def test_the_prompt_template_is_saved_beside_the_weights(run_dir, student):
    spec = json.loads((run_dir / "student" / "distilled" / "stage1" / "weights" / PROMPT_FILE).read_text())
    assert spec == student.spec
    assert spec["student_method"] == {**spec["student_method"], "name": "direct", "shots": 2, "max_tokens": 6}
    assert spec["task"]["name"] == "last_letters" and spec["stop"] == ["\n"] and spec["max_tokens"] == 6
    assert spec["prompt"].endswith("Q: {question}\nA:") and spec["prompt"].count("Q: ") == 3  # two exemplars


def test_predict_uses_exactly_the_training_prompt(run_dir, student):
    pairs = read_jsonl(run_dir / "distill" / "distilled" / "stage1-answer_only.jsonl")
    inputs = {r["id"]: r for r in read_jsonl(run_dir / "inputs" / "train.jsonl")}
    for pair in pairs[:5]:
        row = inputs[pair["id"]]
        assert student.prompt(row) == pair["prompt"]  # a run's input row, as it is on disk
        assert student.prompt(row["inputs"]) == pair["prompt"]  # or just its fields
        question = student.task.question(student.example(row))
        assert student.prompt(question) == pair["prompt"]  # or the question's text
        assert render(student.spec, question) == pair["prompt"]  # the literal template says the same


def test_a_run_trained_before_templates_were_saved_gets_the_same_template(run_dir, student, tmp_path):
    import shutil

    from s2distill.student.predict import load_spec

    weights = tmp_path / "stage1" / "weights"
    shutil.copytree(student.weights, weights)
    (weights / PROMPT_FILE).unlink()
    assert load_spec(run_dir, weights) == student.spec  # rebuilt from recipe.yaml and the training pairs


def test_predict_gives_the_answers_the_run_evaluated(run_dir, student):
    records = read_jsonl(run_dir / "eval" / "distilled-stage1.jsonl")
    test = {item.example.id: item.example for item in student.task.labeled("test")}
    results = student.predict([test[r["id"]].inputs for r in records])
    assert [p["answer"] for p in results] == [r["answer"] for r in records]
    assert [p["tokens"] for p in results] == [r["completion_tokens"] for r in records]
    one = student.predict(test[records[0]["id"]].inputs)
    assert isinstance(one, dict) and one["answer"] == records[0]["answer"]


def test_cli_predict_writes_jsonl_and_reports_bad_inputs(run_dir, tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"words": ["Ada", "Lovelace"]}\n"Take the last letters of the words in \\"Alan Turing\\" and concatenate them."\n')
    runner = CliRunner()
    ok = runner.invoke(app, ["predict", str(run_dir), "--input", str(inputs), "--out", str(tmp_path / "out.jsonl"), "--no-progress"])
    assert ok.exit_code == 0, ok.output
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["input"] for r in rows] == [{"words": ["Ada", "Lovelace"]}, json.loads(inputs.read_text().splitlines()[1])]
    assert all(set(r) == {"input", "answer", "tokens", "output", "confidence"} and r["tokens"] >= 0 and 0 < r["confidence"] <= 1 for r in rows)
    text = runner.invoke(app, ["predict", str(run_dir), "--text", "Take the last letters of the words in \"Ada Byron\" "
                               "and concatenate them.", "--no-progress"])
    assert text.exit_code == 0, text.output
    assert json.loads(text.stdout.strip().splitlines()[-1])["input"].startswith("Take the last letters")
    (tmp_path / "bad.jsonl").write_text('{"wrong": 1}\n')
    bad = runner.invoke(app, ["predict", str(run_dir), "--input", str(tmp_path / "bad.jsonl"), "--no-progress"])
    assert bad.exit_code == 2 and "bad.jsonl: row 1" in bad.output
    neither = runner.invoke(app, ["predict", str(run_dir)])
    assert neither.exit_code == 2 and "exactly one of --input" in neither.output
    empty = runner.invoke(app, ["predict", str(tmp_path), "--text", "x"])
    assert empty.exit_code == 2 and "no trained student" in empty.output


def test_the_exported_merged_model_answers_as_predict_does(run_dir, student, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["export", str(run_dir), "--to", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not (out / "adapter_config.json").exists()  # merged: no PEFT needed
    AutoModelForCausalLM.from_pretrained(out)  # plain transformers loads it
    spec = json.loads((out / PROMPT_FILE).read_text())
    card = (out / "README.md").read_text()
    assert "## Results" in card and "| distilled |" in card and "kept" in card and "name: smoke" in card
    assert spec["prompt"] in card
    # The same greedy answers from the merged folder (no adapter) and from predict, on 20 inputs.
    words = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "John", "Claude", "Tony", "Niklaus"]
    inputs = [{"words": [a, b]} for a in words[:4] for b in words[4:9]]
    predicted = student.predict(inputs)
    merged = HFLM(out)
    prompts = [render(spec, student.task.question(student.example(i))) for i in inputs]
    completions = merged.generate([Request(prompt=p, temperature=0.0, max_tokens=spec["max_tokens"], stop=tuple(spec["stop"]))
                                   for p in prompts])
    assert [c[0].text for c in completions] == [p["output"] for p in predicted]
    # Greedy text from a tiny model says little (it may repeat one token): the merged weights give
    # the adapter's logits, which is what the export promises.
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer


    base = student.lm_config.weights_dir()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(student.weights)).eval()
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = AutoTokenizer.from_pretrained(out)(prompts[:4], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected, got = adapted(**ids).logits, plain(**ids).logits
    assert torch.allclose(expected, got, atol=1e-4)
    untouched = AutoModelForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        assert not torch.allclose(untouched(**ids).logits, got, atol=1e-3)  # training changed it


def test_gguf_export_needs_llama_cpp_and_uses_its_converter(run_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    missing = CliRunner().invoke(app, ["export", str(run_dir), "--to", str(tmp_path / "m"), "--gguf"])
    assert missing.exit_code == 2 and "convert_hf_to_gguf.py" in missing.output
    assert not (tmp_path / "m").exists()  # refused before writing anything
    # A stand-in for llama.cpp's converter: it is called on the merged folder with --outfile.
    llama = tmp_path / "llama.cpp"
    llama.mkdir()
    script = llama / "convert_hf_to_gguf.py"
    script.write_text("import sys, pathlib\nargs = sys.argv\nassert (pathlib.Path(args[1]) / 'config.json').exists()\n"
                      "pathlib.Path(args[args.index('--outfile') + 1]).write_bytes(b'GGUF')\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    done = CliRunner().invoke(app, ["export", str(run_dir), "--to", str(tmp_path / "g"), "--gguf", "--llama-cpp", str(llama)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "g" / "model.gguf").read_bytes() == b"GGUF"
    modelfile = (tmp_path / "g" / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./model.gguf\nTEMPLATE \"\"\"") and "Q: {{ .Prompt }}\nA:\"\"\"" in modelfile
    assert 'PARAMETER stop "\\n"' in modelfile and "PARAMETER temperature 0" in modelfile


def test_export_data_writes_the_sets_and_verdicts_as_a_datasets_folder(run_dir, tmp_path):
    from datasets import load_from_disk

    result = CliRunner().invoke(app, ["export-data", str(run_dir), "--to", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    data = load_from_disk(str(tmp_path / "data" / "dataset"))
    pairs = read_jsonl(run_dir / "distill" / "distilled" / "stage1-answer_only.jsonl")
    assert len(data["stage1_answer_only"]) == len(pairs) and data["stage1_answer_only"][0]["prompt"] == pairs[0]["prompt"]
    verdicts = data["verdicts"]
    assert len(verdicts) == 24 and sum(verdicts["kept"]) == len(pairs) and all(verdicts["reason"])
    assert json.loads(verdicts[0]["inputs"])["words"]
    assert len(read_jsonl(tmp_path / "data" / "jsonl" / "verdicts.jsonl")) == 24
    assert "| verdicts | 24 |" in (tmp_path / "data" / "README.md").read_text()


def test_the_api_runs_a_recipe_given_as_a_dict(recipes_dir, tmp_path):
    import yaml

    data = yaml.safe_load((recipes_dir / "smoke.yaml").read_text())
    report = s2distill.run(data, out=tmp_path / "run", overrides=["evaluate.systems=[system2]"])
    assert [r["system"] for r in report.rows] == ["system2"] and data.get("evaluate") is None  # the dict is not changed
    assert load_recipe(recipes_dir / "smoke.yaml").name == report["name"]
