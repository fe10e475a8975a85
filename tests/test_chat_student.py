"""A chat student (`student.method: {name: direct, prompt_format: chat}`): System 1 asked the bare
question in chat messages, conversational training pairs whose labels are the assistant turn alone,
and the distilled student evaluated, saved, predicted with and exported as a chat model."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from s2distill.config.recipe import validate_recipe
from s2distill.distill.pairs import answers_on_several_lines, pair_text
from s2distill.methods.direct import direct
from s2distill.artifacts import read_jsonl
from s2distill.student.prompt import RecordingLM
from s2distill.tasks.last_letters import LastLetters
from s2distill.types import Example

# A chat template whose prompt (with the generation prompt) is a prefix of prompt + answer, as real ones are.
CHAT_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'assistant' %}<|assistant|>\n{{ m['content'] }}{{ eos_token }}"
                 "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endif %}{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    """The tiny model with a chat template, in a folder of its own (an `hf` backend model)."""
    from transformers import AutoTokenizer

    from s2distill.lm.tiny import tiny_model_dir

    folder = tmp_path_factory.mktemp("models") / "tiny-chat"
    shutil.copytree(tiny_model_dir(), folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


def chat_recipe(chat_model, **method):
    from tests.conftest import ROOT

    data = yaml.safe_load((ROOT / "recipes" / "smoke.yaml").read_text())
    data["student"] = {"model": {"backend": "hf", "path": str(chat_model), "dtype": "float32"},
                       "method": {"name": "direct", "shots": 0, "prompt_format": "chat", "max_tokens": 6, **method}}
    return validate_recipe(data)


@pytest.fixture(scope="module")
def chat_run(chat_model, tmp_path_factory):
    """The smoke recipe with a zero-shot chat student, run once; every request the student model got is kept."""
    from s2distill.lm.hf import HFLM
    from s2distill.pipeline import Pipeline

    out = tmp_path_factory.mktemp("chat-run")
    requests = []
    original = HFLM._prompt_text
    mp = pytest.MonkeyPatch()
    mp.setattr(HFLM, "_prompt_text", lambda self, request: requests.append(request) or original(self, request))
    try:
        report = Pipeline(chat_recipe(chat_model), out, progress=False).run()
    finally:
        mp.undo()
    return out, report, requests


def test_direct_in_chat_asks_the_bare_question_and_exemplars_as_turns():
    task = LastLetters()
    example = Example("x", {"words": ["Ada", "Bob"]})
    question = task.question(example)
    recorder = RecordingLM()
    direct(task, shots=0, prompt_format="chat")(example, recorder)
    [request] = recorder.requests
    assert request.prompt is None and request.messages == (("user", question),) and request.stop == ()

    recorder = RecordingLM()
    direct(task, shots=2, prompt_format="chat", task_prefix="[label] ", question_suffix=" Think.")(example, recorder)
    messages = recorder.requests[0].messages
    assert [role for role, _ in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[0][1] == "[label] " + task.shots[0].question + " Think." and messages[1][1] == task.shots[0].answer
    assert messages[-1][1] == question + " Think."
    assert not any("Q:" in content or "A:" in content for _, content in messages)


def test_a_chat_reply_is_read_from_its_first_line():
    task = LastLetters()

    class Replies(RecordingLM):
        def generate(self, requests):
            from s2distill.types import Completion, Usage

            return [[Completion("\nab\nand more words", Usage(), "stop", 0)] for _ in requests]

    trace = direct(task, shots=0, prompt_format="chat")(Example("x", {"words": ["Xa", "Yb"]}), Replies())
    assert trace.answer == "ab" and trace.calls[0].prompt == task.question(Example("x", {"words": ["Xa", "Yb"]}))


def test_a_chat_student_runs_end_to_end_on_conversational_pairs(chat_run):
    out, report, requests = chat_run
    distilled = report["rows"][[r["system"] for r in report["rows"]].index("distilled")]
    assert distilled["n"] == 8 and distilled["train_pairs"] > 0
    pairs = read_jsonl(out / "distill" / "distilled" / "stage1-answer_only.jsonl")
    inputs = {r["id"]: r["inputs"] for r in read_jsonl(out / "inputs" / "train.jsonl")}
    task = LastLetters()
    for pair in pairs:  # TRL's conversational prompt–completion format: the bare question, the answer
        assert pair["prompt"] == [{"role": "user", "content": task.question(Example(pair["id"], inputs[pair["id"]]))}]
        [turn] = pair["completion"]
        assert turn["role"] == "assistant" and turn["content"] and turn["content"] == turn["content"].strip()
    assert not answers_on_several_lines(pairs)
    # System 1 and the distilled student were both asked in chat messages, never a raw prompt
    assert requests and all(r.prompt is None and r.messages == (("user", r.messages[0][1]),) for r in requests)
    evaluated = {r["id"] for r in read_jsonl(out / "eval" / "distilled-stage1.jsonl")}
    assert len(evaluated) == 8
    from s2distill.report.html import gather  # the report page shows the pairs as text

    assert (out / "report.html").exists()
    shown = json.dumps(gather(out, report), ensure_ascii=False)
    assert json.dumps(pair_text(pairs[0]["prompt"]))[1:-1] in shown and '"role"' not in shown


def test_chat_labels_mask_the_template_and_keep_the_assistant_answer(chat_run, chat_model, tmp_path):
    from transformers import AutoTokenizer

    from s2distill.training.sft import build_trainer

    out, _, _ = chat_run
    pairs = read_jsonl(out / "distill" / "distilled" / "stage1-answer_only.jsonl")[:2]
    recipe = chat_recipe(chat_model)
    trainer = build_trainer(pairs, chat_model, tmp_path, recipe.train)
    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for row, pair in enumerate(pairs):
        prompt_text = tokenizer.apply_chat_template(pair["prompt"], tokenize=False, add_generation_prompt=True)
        assert prompt_text.startswith("<|user|>\n") and prompt_text.endswith("<|assistant|>\n")
        prompt_len = len(tokenizer(prompt_text, add_special_tokens=False).input_ids)
        labels, ids = batch["labels"][row].tolist(), batch["input_ids"][row].tolist()
        assert tokenizer.decode(ids[:prompt_len]) == prompt_text  # the template's tokens, then the answer's
        assert all(label == -100 for label in labels[:prompt_len])
        answer = [(i, label) for i, label in zip(ids[prompt_len:], labels[prompt_len:]) if label != -100]
        assert [i for i, _ in answer] == [label for _, label in answer]
        assert tokenizer.decode([label for _, label in answer]) == pair["completion"][0]["content"] + tokenizer.eos_token


def test_a_chat_pair_for_a_model_without_a_chat_template_is_its_plain_rendering():
    from transformers import AutoTokenizer

    from s2distill.lm.tiny import tiny_model_dir
    from s2distill.training.trl_pairs import trl_pair
    from s2distill.training.guard import pair_length

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir())
    assert not tokenizer.chat_template
    pair = {"prompt": [{"role": "user", "content": "ab cd"}], "completion": [{"role": "assistant", "content": "bd"}]}
    assert trl_pair(pair, tokenizer) == {"prompt": "user: ab cd\nassistant:", "completion": " bd"}  # as lm.base renders it
    assert pair_length(tokenizer, pair) == len(tokenizer("user: ab cd\nassistant: bd").input_ids)


def test_the_chat_student_is_saved_predicted_with_and_exported_as_a_chat_model(chat_run):
    import s2distill
    from s2distill.student.export import model_card, ollama_modelfile

    out, _, _ = chat_run
    student = s2distill.load_student(out)
    try:
        spec = student.spec
        assert spec["prompt"] is None and spec["prompt_format"] == "chat" and spec["stop"] == []
        assert spec["messages"] == [{"role": "user", "content": "{question}"}]
        pairs = read_jsonl(out / "distill" / "distilled" / "stage1-answer_only.jsonl")
        inputs = {r["id"]: r for r in read_jsonl(out / "inputs" / "train.jsonl")}
        for pair in pairs[:3]:
            assert student.prompt(inputs[pair["id"]]) == pair["prompt"]
        records = read_jsonl(out / "eval" / "distilled-stage1.jsonl")
        test = {item.example.id: item.example for item in student.task.labeled("test")}
        results = student.predict([test[r["id"]].inputs for r in records])
        assert [p["answer"] for p in results] == [r["answer"] for r in records]
    finally:
        student.close()
    modelfile = ollama_modelfile(spec)
    assert "TEMPLATE" not in modelfile.replace("no TEMPLATE", "").replace("write TEMPLATE", "")
    assert modelfile.count("FROM ./model.gguf") == 1 and "PARAMETER temperature 0" in modelfile
    card = model_card(out, student.weights, spec, variant="distilled")
    assert "apply_chat_template" in card and json.dumps(spec["messages"], indent=1) in card


def test_a_chat_student_with_exemplars_gets_them_as_modelfile_messages():
    from s2distill.student.export import ollama_modelfile

    spec = {"prompt": None, "placeholder": "{question}", "max_tokens": 6, "stop": [],
            "messages": [{"role": "user", "content": "[label] ab cd"}, {"role": "assistant", "content": "bd"},
                         {"role": "user", "content": "{question} Flip."}]}
    modelfile = ollama_modelfile(spec)
    assert 'MESSAGE user """[label] ab cd"""\nMESSAGE assistant """bd"""' in modelfile
    assert '"{question} Flip."' in modelfile  # the text to send around each question


def test_a_chat_student_of_a_model_without_a_chat_template_exports_its_plain_prompt():
    """The embedded Gemma 3 270M has no chat template: the HF backend and training render the messages
    as plain text, and the exported template and Modelfile say that text."""
    from s2distill.student.export import ollama_modelfile
    from s2distill.student.prompt import plain_chat_spec, render

    spec = plain_chat_spec({"prompt": None, "placeholder": "{question}", "max_tokens": 6, "stop": [],
                            "messages": [{"role": "user", "content": "{question}"}]})
    assert render(spec, "ab cd") == "user: ab cd\nassistant:"
    assert 'TEMPLATE """user: {{ .Prompt }}\nassistant:"""' in ollama_modelfile(spec)


def test_the_exported_chat_student_keeps_its_chat_template_and_messages(chat_run, tmp_path):
    from transformers import AutoTokenizer

    from s2distill.student.export import export_model
    from s2distill.student.prompt import PROMPT_FILE

    out, _, _ = chat_run
    folder = export_model(out, tmp_path / "export")
    assert AutoTokenizer.from_pretrained(folder).chat_template == CHAT_TEMPLATE
    spec = json.loads((folder / PROMPT_FILE).read_text())
    assert spec["prompt"] is None and spec["messages"] == [{"role": "user", "content": "{question}"}]
    assert "apply_chat_template" in (folder / "README.md").read_text()

    from s2distill.student.export import export_data  # the data export keeps the conversational pairs as they are

    counts = export_data(out, tmp_path / "data")
    [pair] = read_jsonl(tmp_path / "data" / "jsonl" / "stage1_answer_only.jsonl")[:1]
    assert counts["stage1_answer_only"] > 0 and pair["completion"][0]["role"] == "assistant"
