"""Each real task on a few real rows: loading, splits kept apart, answer extraction edge cases, scoring."""

from __future__ import annotations

import json

import pytest

from s2distill.tasks.commonsenseqa import CommonsenseQA, CommonsenseQAConfig
from s2distill.tasks.gsm8k import GSM8K, GSM8KConfig
from s2distill.tasks.judging import Judging, JudgingConfig
from s2distill.tasks.mbpp import MBPP, MBPPConfig
from s2distill.tasks.triviaqa import TriviaQA, TriviaQAConfig


def test_gsm8k_loads_real_rows_and_reads_numbers_with_commas_and_dollars():
    task = GSM8K(GSM8KConfig(train_size=5, test_size=3))
    [first, *_] = task.labeled("test")
    assert first.target == "18" and first.example.inputs["question"].startswith("Janet’s ducks lay 16 eggs")
    train_questions = {x.example.inputs["question"] for x in task.labeled("train")}
    assert not train_questions & {s.question for s in task.shots}  # exemplars never in the pool
    parse = task.parse_answer
    assert parse("So she pays $1,234.50 in total. The answer is $1,234.50.") == "1234.5"
    assert parse("The answer is 18. Then 7 more.") == "18"  # the marked number, not the last
    assert parse("3 + 4 = 7") == "7" and parse("Final answer: 0.50") == "0.5" and parse("no number") is None
    assert task.normalize("72.0") == "72" and task.score("18.00", "18") == 1.0 and task.score(None, "18") == 0.0


def test_gsm8k_exemplar_programs_print_their_answers():
    from s2distill.sandbox import run_python

    task = GSM8K()
    for shot in task.shots:
        assert task.parse_answer(run_python(shot.program).stdout) == shot.answer


def test_commonsenseqa_letters_and_the_shuffle_maps_back():
    task = CommonsenseQA(CommonsenseQAConfig(train_size=4, test_size=2))
    item = task.labeled("test")[0]
    assert item.target == "A" and task.question(item.example).endswith("(A) bank (B) library (C) department store (D) mall (E) new york")
    for text, letter in [("The answer is (B).", "B"), ("(C)", "C"), ("D) bank", "D"), ("answer: e", "E"), (" B", "B"),
                         ("A revolving door", None), ("none of these", None)]:
        assert task.parse_answer(text) == letter, text
    shuffled = task.perturb(item.example)
    assert shuffled.id == item.example.id and shuffled.inputs["choices"] != item.example.inputs["choices"]
    right_text = dict(item.example.inputs["choices"])["A"]
    new_letter = next(label for label, text in shuffled.inputs["choices"] if text == right_text)
    assert task.map_back(item.example.id, new_letter) == "A"
    assert sorted(t for _, t in shuffled.inputs["choices"]) == sorted(t for _, t in item.example.inputs["choices"])
    assert task.perturb(item.example) == shuffled  # the same shuffle on every run


def test_mbpp_code_in_fences_and_pass_at_1_in_the_sandbox_with_hangs_and_crashes_failing():
    task = MBPP(MBPPConfig(train_size=2, test_size=1, test_timeout=1.0))
    item = task.labeled("test")[0]
    assert item.example.id == "test-11" and 'assert remove_Occ("hello","l") == "heo"' in task.question(item.example)
    assert {x.example.id for x in task.labeled("train")} == {"train-601", "train-602"}
    fenced = "Here it is:\n```python\ndef remove_Occ(s, ch):\n\ts = s.replace(ch, '', 1)\n\treturn s[::-1].replace(ch, '', 1)[::-1]\n```\nDone."
    code = task.parse_answer(fenced)
    assert code.startswith("def remove_Occ(s, ch):\n    s = s.replace") and "Done" not in code
    assert task.score(code, item.target) == 1.0
    assert task.parse_answer(" def f(x):\n    return x\nConfidence: 1") == "def f(x):\n    return x"
    assert task.parse_answer("I cannot write that.") is None
    assert task.score("def remove_Occ(s, ch):\n    while True:\n        pass", item.target) == 0.0  # hangs: timed out
    assert task.score("def remove_Occ(s, ch):\n    return 1 / 0", item.target) == 0.0  # crashes
    assert task.score("def remove_Occ(s, ch):\n    return 'heo'", item.target) == 0.0  # passes one assert of three
    assert task.score("import os\nos.remove('/etc/hosts')\ndef remove_Occ(s, ch): pass", item.target) == 0.0


def test_triviaqa_splits_by_question_and_scores_aliases_biased_and_unbiased_apart():
    task = TriviaQA(TriviaQAConfig(train_size=8, test_questions=2))
    test = task.labeled("test")
    assert {x.example.inputs["template"] for x in test} == {"neutral", "doubts_correct", "suggests_incorrect", "suggests_correct"}
    assert {x.example.inputs["question"] for x in test}.isdisjoint({x.example.inputs["question"] for x in task.labeled("train")})
    biased = next(x for x in test if x.example.inputs["template"] == "suggests_incorrect")
    assert "I think the answer is The Jones Theory" in task.question(biased.example)
    assert task.score(task.parse_answer("The answer is the Peter principle."), biased.target) == 1.0
    assert task.score("Peter", biased.target) == 0.0 and task.score("The Jones Theory", biased.target) == 0.0
    assert task.parse_answer("Washington D.C. is the capital") == "Washington D.C. is the capital"
    records = [{"id": x.example.id, "correct": float(not x.example.inputs["biased"])} for x in test]
    metrics = task.metrics(records, {x.example.id: x.example for x in test})
    assert metrics["accuracy_unbiased"] == 1.0 and metrics["accuracy_biased"] == 0.0


def test_judging_pairs_in_both_orders_verdict_formats_and_position_inconsistency():
    task = Judging(JudgingConfig(test_trees=1, train_size=4))
    test = task.labeled("test")
    ab, ba = test[0], test[1]
    assert (ab.target, ba.target) == ("A", "B")
    assert ab.example.inputs["response_a"] == ba.example.inputs["response_b"]
    train_questions = {x.example.inputs["question"] for x in task.labeled("train")}
    assert ab.example.inputs["question"] not in train_questions
    for text, verdict in [("[[B]]", "B"), ("Assistant A is better. [[A]]", "A"), ("B", "B"), ("Assistant C", "C"),
                          ("A good answer", None), ("Both are fine", None)]:
        assert task.parse_answer(text) == verdict, text
    swapped = task.perturb(ab.example)
    assert swapped.inputs["response_a"] == ab.example.inputs["response_b"] and task.map_back(ab.example.id, "A") == "B"
    examples = {x.example.id: x.example for x in test[:4]}
    consistent = [{"id": test[0].example.id, "answer": "A"}, {"id": test[1].example.id, "answer": "B"}]
    biased = [{"id": test[2].example.id, "answer": "A"}, {"id": test[3].example.id, "answer": "A"}]  # always "A"
    metrics = task.metrics(consistent + biased, examples)
    assert metrics == {"position_inconsistent": 0.5, "pairs": 2.0}


@pytest.mark.parametrize("task_class", [GSM8K, CommonsenseQA, MBPP, TriviaQA, Judging])
def test_every_real_task_keeps_train_and_test_apart_and_has_exemplars(task_class):
    task = task_class()
    train = {x.example.id for x in task.labeled("train")}
    test = {x.example.id for x in task.labeled("test")}
    assert train and test and not train & test
    assert task.shots and all(s.answer for s in task.shots)
    targets = [x.target for x in task.labeled("test")]
    assert all(isinstance(t, str) and t for t in targets)
    if task_class in (MBPP, TriviaQA):
        assert all(json.loads(t) for t in targets)


def test_mt_bench_pairs_come_from_generated_answers_and_score_position_consistency(tmp_path):
    from typer.testing import CliRunner

    from s2distill.cli.app import app
    from s2distill.scoring.score import score_traces
    from s2distill.types import Trace

    out = tmp_path / "answers.jsonl"
    rules = '[{pattern: "Answer:$", responses: ["First answer.", "Second answer."]}]'
    result = CliRunner().invoke(app, ["mt-bench-answers", str(out), "backend=fake", f"rules={rules}"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80 and rows[0]["answer_a"] == "First answer." and rows[0]["answer_b"] == "Second answer."

    with pytest.raises(ValueError, match="source mt_bench needs answers"):
        JudgingConfig(source="mt_bench")
    task = Judging(JudgingConfig(source="mt_bench", answers=str(out), test_size=4))
    test = task.labeled("test")
    assert len(test) == 8 and task.metric == "position_consistency" and all(x.target == "" for x in test)
    assert test[0].example.inputs["response_a"] == test[1].example.inputs["response_b"] == "First answer."
    # A judge that always says "A" is consistent on no pair; one that follows the first answer, on all.
    always_a = [Trace(x.example.id, "direct", "A") for x in test]
    follows = [Trace(x.example.id, "direct", "A" if x.example.inputs["order"] == "ab" else "B") for x in test]
    assert score_traces(task, test, always_a, system="s", method="m")[0].score == 0.0
    assert score_traces(task, test, follows, system="s", method="m")[0].score == 1.0
