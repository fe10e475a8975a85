"""The user's own data: files in every format, field mapping, errors naming the row and field, and
a whole run on an unlabeled JSONL made here (fake teacher, tiny student)."""

from __future__ import annotations

import csv
import json

import pytest

from s2distill.config.recipe import RecipeError, validate_recipe
from s2distill.pipeline import Pipeline
from s2distill.artifacts import read_jsonl
from s2distill.tasks import DataError, build_task
from s2distill.types import Example


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def task_of(**fields):
    return build_task(validate_recipe({"task": {"name": "custom", **fields}}).task)


ADDITIONS = [{"a": a, "b": b, "sum": a + b} for a in range(1, 7) for b in range(1, 6)]


def test_every_format_reads_the_same_rows(tmp_path):
    from datasets import Dataset, DatasetDict

    write_jsonl(tmp_path / "d.jsonl", ADDITIONS)
    (tmp_path / "d.json").write_text(json.dumps(ADDITIONS))
    with (tmp_path / "d.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["a", "b", "sum"])
        writer.writeheader()
        writer.writerows(ADDITIONS)
    Dataset.from_list(ADDITIONS).to_parquet(str(tmp_path / "d.parquet"))
    Dataset.from_list(ADDITIONS).save_to_disk(str(tmp_path / "folder"))
    questions = None
    for name in ("d.jsonl", "d.json", "d.csv", "d.parquet", "folder"):
        task = task_of(path=str(tmp_path / name), template="What is {a} plus {b}?", answer="number", label="sum")
        train, test = task.labeled("train"), task.labeled("test")
        assert len(train) + len(test) == 30 and len(test) == 6  # test_fraction 0.2, seeded
        got = sorted(task.question(item.example) for item in train + test)
        assert questions is None or got == questions, name
        questions = got
        assert all(task.score(str(int(item.target)), item.target) == 1.0 for item in test)
        # The label is read by evaluation only: no example's inputs hold it.
        assert all("sum" not in item.example.inputs for item in train + test)
    # A datasets folder with a test split: that split is the test set.
    DatasetDict({"train": Dataset.from_list(ADDITIONS[:20]), "test": Dataset.from_list(ADDITIONS[20:])}).save_to_disk(
        str(tmp_path / "splits"))
    task = task_of(path=str(tmp_path / "splits"), template="{a}+{b}", answer="number")
    assert len(task.labeled("train")) == 20 and len(task.labeled("test")) == 10


def test_choice_answers_map_labels_to_letters_and_perturb_by_shuffling(tmp_path):
    rows = [{"q": "Capital of France?", "opts": ["Rome", "Paris", "Oslo"], "gold": "Paris"},
            {"q": "2+2?", "opts": {"A": "3", "B": "4"}, "gold": "B"},
            {"q": "Red fruit?", "opts": '["apple", "banana"]', "gold": "(a)"}]
    task = task_of(path=str(write_jsonl(tmp_path / "c.jsonl", rows)), question="q", answer="choice", options="opts",
                   label="gold", test_path=str(write_jsonl(tmp_path / "t.jsonl", rows)))
    assert [item.target for item in task.labeled("test")] == ["B", "B", "A"]
    example = task.labeled("train")[0].example
    assert task.question(example) == "Capital of France?\nAnswer Choices: (A) Rome (B) Paris (C) Oslo"
    assert task.parse_answer("The answer is (B).") == "B"
    shuffled = task.perturb(example)
    paris = next(letter for letter, text in shuffled.inputs["opts"] if text == "Paris")
    assert task.map_back(example.id, paris) == "B"


def test_bad_rows_are_errors_naming_the_row_and_field_or_counted_skips(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"q": "fine?"}, [1, 2], {"q": "  "}, {"other": 1}, {"q": "ok?"}, {"q": "yes?"}])
    with pytest.raises(DataError, match=r"bad.jsonl: row 2: not an object"):
        task_of(path=str(path), question="q").labeled("train")
    skipping = task_of(path=str(path), question="q", on_bad_row="skip", test_size=1)
    assert len(skipping.labeled("train")) + len(skipping.labeled("test")) == 3
    assert len(skipping.skipped) == 3
    assert any("row 3: field 'q': the question is empty" in s for s in skipping.skipped)
    assert any("row 4: field 'q' is missing" in s for s in skipping.skipped)
    assert skipping.notes()[0].startswith("3 rows skipped")
    (tmp_path / "broken.jsonl").write_text('{"q": "a"}\n{"q": \n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        task_of(path=str(tmp_path / "broken.jsonl"), question="q").labeled("train")
    labelled = write_jsonl(tmp_path / "l.jsonl", [{"q": "a", "y": "1"}, {"q": "b"}, {"q": "c", "y": "3"}])
    with pytest.raises(DataError, match="row 2: field 'y' \\(the label\\) is missing"):
        task_of(path=str(labelled), question="q", label="y").labeled("test")
    with pytest.raises(RecipeError, match="task.path: data path .* does not exist"):
        task_of(path=str(tmp_path / "nope.jsonl"), question="q")
    with pytest.raises(RecipeError, match="either question .* or template"):
        task_of(path=str(path))
    with pytest.raises(RecipeError, match="cannot be part of the question"):
        task_of(path=str(labelled), template="{q} {y}", label="y")


def test_a_user_parser_reads_answers(tmp_path):
    (tmp_path / "myparse.py").write_text("def last_word(text):\n    words = text.split()\n    return words[-1] if words else None\n")
    task = task_of(path=str(write_jsonl(tmp_path / "d.jsonl", [{"q": "x"}, {"q": "y"}])), question="q",
                   answer=f"{tmp_path / 'myparse.py'}:last_word")
    assert task.parse_answer("so it is banana") == "banana" and task.parse_answer("") is None


UNLABELED_RECIPE = {
    "name": "custom-e2e",
    "teacher": {
        "model": {"backend": "fake", "rules": [
            # Zero-shot chain of thought over "What is A plus B?": right in three samples of four.
            {"pattern": r"What is (\d+) plus (\d+)\?\nSolution:",
             "responses": ["Add \\1 and \\2.\nFinal answer: \\1\\2", "Adding.\nFinal answer: \\1\\2",
                           "Sum them.\nFinal answer: \\1\\2", "Hmm.\nFinal answer: 0"]},
        ]},
        "method": {"name": "cot", "shots": 0},
        "samples": 4,
    },
    "student": {"model": {"backend": "tiny"}, "method": {"name": "direct", "shots": 0, "max_tokens": 6}},
    "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "lora_r": 4, "lora_alpha": 8},
    "workers": 8,
}


def test_a_run_on_an_unlabeled_jsonl_distils_and_scores_agreement_with_system2(tmp_path):
    data = write_jsonl(tmp_path / "questions.jsonl", [{"a": r["a"], "b": r["b"]} for r in ADDITIONS])
    recipe = validate_recipe({**UNLABELED_RECIPE, "task": {"name": "custom", "path": str(data),
                                                          "template": "What is {a} plus {b}?", "answer": "exact"}})
    report = Pipeline(recipe, tmp_path / "run", progress=False).run()
    rows = {r["system"]: r for r in report["rows"]}
    assert set(rows) == {"system1", "system2", "distilled"}
    assert all(r["metric"] == "agreement_with_system2" and r["n"] == 6 for r in rows.values())
    assert rows["system2"]["score"] == 1.0  # the references are System 2's own greedy answers
    references = read_jsonl(tmp_path / "run" / "eval" / "reference.jsonl")
    assert len(references) == 6 and all(r["answer"] for r in references)
    records = read_jsonl(tmp_path / "run" / "eval" / "system2-cot.jsonl")
    assert all(r["target"] == r["answer"] for r in records)
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "no labels: the score is agreement with System 2" in markdown
    pairs = read_jsonl(tmp_path / "run" / "distill" / "distilled" / "stage1-answer_only.jsonl")
    assert pairs and all(p["prompt"].startswith("Q: What is ") for p in pairs)
    verdicts = read_jsonl(tmp_path / "run" / "curation" / "verdicts.jsonl")
    assert len(verdicts) == 24 and all(v["kept"] for v in verdicts)
    # The prompt template is saved beside the weights.
    spec = json.loads((tmp_path / "run" / "student" / "distilled" / "stage1" / "weights" / "s2distill_prompt.json").read_text())
    assert spec["prompt"] == "Q: {question}\nA:" and spec["stop"] == ["\n"] and spec["max_tokens"] == 6
    assert spec["task"]["template"] == "What is {a} plus {b}?" and spec["student_method"]["shots"] == 0
    assert pairs[0]["prompt"] == spec["prompt"].replace("{question}", pairs[0]["prompt"][3:-3])


def test_free_text_without_labels_is_judged_against_system2_in_both_orders(tmp_path):
    data = write_jsonl(tmp_path / "q.jsonl", [{"text": f"Tell me about topic {i}."} for i in range(10)])
    judge_rules = [
        # The judge: prefers the longer response, in either order (the fake sees both texts).
        {"pattern": r"\[Assistant A\]\nA fine answer about \w+ (\d+)\.\n\n\[Assistant B\]\n(?!A fine)",
         "responses": ["A"]},
        {"pattern": r"\[Assistant A\]\n(?!A fine)[\s\S]*?\n\n\[Assistant B\]\nA fine answer", "responses": ["B"]},
        {"pattern": r"topic (\d+)\.\nSolution:", "responses": ["Thinking.\nFinal answer: A fine answer about topic \\1."]},
    ]
    recipe = validate_recipe({
        **UNLABELED_RECIPE, "name": "free-text",
        "task": {"name": "custom", "path": str(data), "question": "text", "answer": "free_text", "test_size": 3},
        "teacher": {**UNLABELED_RECIPE["teacher"], "samples": 2,
                    "model": {"backend": "fake", "rules": judge_rules, "default": "C"}},
        "evaluate": {"systems": ["system1", "system2"]},
    })
    report = Pipeline(recipe, tmp_path / "run", progress=False).run()
    system1, system2 = report["rows"]
    assert system1["metric"] == "win_rate_vs_system2"
    assert system2["score"] == 0.5 and system2["metrics"]["tie"] == 1.0  # its own answers: all ties, no judge call
    # The tiny untrained student writes noise: System 2's answer wins both orders, or the judge's default ties.
    records = read_jsonl(tmp_path / "run" / "eval" / "system1.jsonl")
    assert {r["judged"] for r in records} == {"loss"} and system1["score"] == 0.0  # the judge preferred System 2 twice
    assert system1["metrics"]["win"] + system1["metrics"]["tie"] + system1["metrics"]["loss"] == pytest.approx(1.0)


def test_predicting_a_custom_input_checks_its_fields(tmp_path):
    task = task_of(path=str(write_jsonl(tmp_path / "d.jsonl", [{"q": "x"}, {"q": "y"}])), question="q")
    assert task.example_from_row({"q": "hello"}).inputs == {"q": "hello"}
    with pytest.raises(DataError, match="field 'q' is missing"):
        task.example_from_row({"x": 1}, where="input.jsonl: row 1")
    assert isinstance(task.example_from_row({"q": "hi"}), Example)


def test_the_pairwise_judge_needs_both_orders_to_agree_for_a_win_or_a_loss():
    from s2distill.scoring.agreement import judge_program, outcome_without_judge
    from s2distill.lm import FakeLM

    task = type("T", (), {"question": staticmethod(lambda e: "Q?")})()
    example = Example("x", {})
    answers, references = {"x": "mine"}, {"x": "theirs"}
    verdicts = {  # what the judge says when A is "mine" / when A is "theirs"
        "win": ("A", "B"), "loss": ("B", "A"), "tie": ("A", "A"),
    }
    for expected, (first, second) in verdicts.items():
        lm = FakeLM([{"pattern": r"\[Assistant A\]\nmine\n", "responses": [first]},
                     {"pattern": r"\[Assistant A\]\ntheirs\n", "responses": [second]}])
        for fmt in ("fewshot", "chat"):
            trace = judge_program(task, answers, references, prompt_format=fmt)(example, lm)
            assert trace.answer == expected and len(trace.calls) == 2, (expected, fmt)
    assert outcome_without_judge(None, "x", str.lower) == "loss"
    assert outcome_without_judge("X ", "x", str.strip) is None and outcome_without_judge("x", "x", str.lower) == "tie"


def test_a_changed_data_file_is_another_run_and_perturbation_needs_choices(tmp_path):
    data = write_jsonl(tmp_path / "q.jsonl", [{"a": r["a"], "b": r["b"]} for r in ADDITIONS])
    recipe = validate_recipe({**UNLABELED_RECIPE, "evaluate": {"systems": ["system2"]},
                              "task": {"name": "custom", "path": str(data), "template": "What is {a} plus {b}?"}})
    Pipeline(recipe, tmp_path / "run", progress=False).run()
    write_jsonl(data, [{"a": r["a"], "b": r["b"] + 1} for r in ADDITIONS])
    again = Pipeline(recipe, tmp_path / "run", progress=False).run()  # the changed file: its stages are redone
    redone = {r["name"]: r["reason"] for r in again["stages"]["ran"]}
    assert redone["inputs"].startswith("content: ")  # what changed: the inputs' content
    assert set(redone) == {"inputs", "reference", "eval:system2-cot"}
    assert again["lm"]["calls"] > 0
    perturbing = validate_recipe({**UNLABELED_RECIPE, "curation": {"filter": "perturbation"},
                                  "task": {"name": "custom", "path": str(data), "template": "{a}+{b}"}})
    with pytest.raises(RecipeError, match="no answer-preserving perturbation"):
        Pipeline(perturbing, tmp_path / "other", progress=False)


def test_with_a_label_field_the_score_is_accuracy_and_only_evaluation_reads_it(tmp_path):
    rows = [{"a": r["a"], "b": r["b"], "gold": f"{r['a']}{r['b']}"} for r in ADDITIONS]  # what the fake teacher answers
    data = write_jsonl(tmp_path / "q.jsonl", rows)
    recipe = validate_recipe({**UNLABELED_RECIPE, "evaluate": {"systems": ["system2"]},
                              "task": {"name": "custom", "path": str(data), "template": "What is {a} plus {b}?",
                                       "label": "gold"}})
    report = Pipeline(recipe, tmp_path / "run", progress=False).run()
    [system2] = report["rows"]
    assert system2["metric"] == "exact_match" and system2["score"] == 1.0 and not report["notes"]
    assert not (tmp_path / "run" / "eval" / "reference.jsonl").exists()
    assert all("gold" not in row["inputs"] for row in read_jsonl(tmp_path / "run" / "inputs" / "train.jsonl"))


def test_a_csv_or_jsonl_with_a_byte_order_mark_reads_as_without(tmp_path):
    """Excel's "CSV UTF-8" starts the file with a byte-order mark: the header's first field is still 'q'."""
    (tmp_path / "bom.csv").write_bytes("q,y\nWhat is 2+2?,4\nWhat is 3+3?,6\nÉtat?,é\n".encode("utf-8-sig"))
    (tmp_path / "bom.jsonl").write_bytes("".join(json.dumps({"q": f"Q{i}?", "y": "é"}) + "\n"
                                                 for i in range(3)).encode("utf-8-sig"))
    for name in ("bom.csv", "bom.jsonl"):
        task = task_of(path=str(tmp_path / name), question="q", label="y", test_size=1)
        items = task.labeled("train") + task.labeled("test")
        assert len(items) == 3 and all(set(item.example.inputs) == {"q"} for item in items), name


def test_a_file_that_is_not_utf8_is_one_error_naming_the_file_and_the_byte(tmp_path):
    (tmp_path / "latin1.jsonl").write_bytes('{"q": "ok?"}\n{"q": "caf\xe9?"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.jsonl: not UTF-8 text: byte offset 23 \(line 2\) is 0xe9"):
        task_of(path=str(tmp_path / "latin1.jsonl"), question="q").labeled("train")
    (tmp_path / "latin1.csv").write_bytes(b"\xef\xbb\xbfq\nok?\ncaf\xe9?\n")  # the offset counts the mark's 3 bytes
    with pytest.raises(DataError, match=r"latin1.csv: not UTF-8 text: byte offset 12 \(line 3\) is 0xe9"):
        task_of(path=str(tmp_path / "latin1.csv"), question="q").labeled("train")
    good = write_jsonl(tmp_path / "good.jsonl", [{"q": "a?"}, {"q": "b?"}])
    with pytest.raises(DataError, match="latin1.jsonl: not UTF-8"):  # a test file too
        task_of(path=str(good), question="q", test_path=str(tmp_path / "latin1.jsonl")).labeled("test")


def test_a_label_of_the_wrong_type_names_the_file_row_and_field(tmp_path):
    rows = [{"q": "Two plus two?", "y": "four"}, {"q": "Three plus three?", "y": 6}, {"q": "Four plus four?", "y": "8"}]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    with pytest.raises(DataError, match=r"mixed.jsonl: row 2: field 'y' \(the label\) is the number 6, but answer "
                                        r"exact compares text: set answer: number"):
        task_of(path=str(path), question="q", label="y").labeled("train")
    with pytest.raises(DataError, match=r"mixed.jsonl: row 1: field 'y' \(the label\): 'four' is not a number"):
        task_of(path=str(path), question="q", label="y", answer="number").labeled("train")
    listed = write_jsonl(tmp_path / "listed.jsonl", [{"q": "a?", "y": "x"}, {"q": "b?", "y": ["x", "y"]}])
    with pytest.raises(DataError, match=r"listed.jsonl: row 2: field 'y' \(the label\) is list \['x', 'y'\]"):
        task_of(path=str(listed), question="q", label="y").labeled("train")
    flags = write_jsonl(tmp_path / "flags.jsonl", [{"q": "a?", "y": True}, {"q": "b?", "y": 1}])
    with pytest.raises(DataError, match=r"flags.jsonl: row 1: field 'y' \(the label\) is bool True; answer number"):
        task_of(path=str(flags), question="q", label="y", answer="number").labeled("train")
    # Skipped like any bad row when asked; numbers and numeric text are numbers.
    skipping = task_of(path=str(path), question="q", label="y", answer="number", on_bad_row="skip", test_size=1)
    assert sorted(item.target for item in skipping.labeled("train") + skipping.labeled("test")) == ["6", "8"]
    assert skipping.skipped == [f"{path}: row 1: field 'y' (the label): 'four' is not a number (answer: number)"]
    numbers = write_jsonl(tmp_path / "n.jsonl", [{"q": "a?", "y": 6}, {"q": "b?", "y": "$1,234.50"}, {"q": "c?", "y": 0.5}])
    task = task_of(path=str(numbers), question="q", label="y", answer="number", test_size=1)
    assert len(task.labeled("train") + task.labeled("test")) == 3


def test_test_inputs_repeating_training_inputs_are_counted_in_the_notes(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"q": "What is 2+2?"}, {"q": "Name a colour."}, {"q": "Why?"}])
    test = write_jsonl(tmp_path / "test.jsonl", [{"q": "What is 2+2?"}, {"q": "  name a   COLOUR. "}, {"q": "New?"}])
    task = task_of(path=str(train), question="q", test_path=str(test))
    [note] = [n for n in task.notes() if "repeat" in n]  # notes() reads the data itself
    assert note.startswith("2 of 3 test inputs repeat a training input (1 exactly, 1 after ignoring whitespace and case)")
    fresh = task_of(path=str(train), question="q", test_path=str(write_jsonl(tmp_path / "new.jsonl", [{"q": "New?"}])))
    assert not [n for n in fresh.notes() if "repeat" in n]
