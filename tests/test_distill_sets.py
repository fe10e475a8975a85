"""The four distillation sets, built from kept outputs, and the HaRD rewrite check."""

from __future__ import annotations

import pytest

from s2distill.distill.compress import judge_rewrite, rewritten_rationales
from s2distill.distill.pairs import answers_on_several_lines, distill_pairs, rationale_of
from s2distill.tasks.last_letters import LastLetters
from s2distill.types import Call, Example, OutputRef, Trace, Usage, Verdict

TASK = LastLetters()
EXAMPLE = Example("x", {"words": ["Ada", "Bo"]})


def pal_trace(sample, program, answer="ao", teacher="pal"):
    return Trace("x", "pal", answer, [Call("p", program, Usage(1, 5))], sample=sample,
                 teacher=teacher, rationale=program)


def verdict(*kept):
    return Verdict("x", True, "ok", "ao", "self_consistency", kept_outputs=[OutputRef(t.teacher, t.sample, t.answer) for t in kept])


def build(fmt, traces, kept, **kwargs):
    by_key = {("x", t.teacher, t.sample): t for t in traces}
    return distill_pairs(fmt, TASK, [EXAMPLE], [verdict(*kept)], by_key, shots=2, **kwargs)


PROGRAM_A = 'words = ["Ada", "Bo"]\n\nprint("".join(w[-1] for w in words))'
PROGRAM_B = 'print("ao")'


def test_answer_and_label_only_give_one_pair_per_input_however_many_outputs_agree():
    traces = [pal_trace(0, PROGRAM_A), pal_trace(1, PROGRAM_B), pal_trace(2, PROGRAM_A)]
    for fmt in ("answer_only", "label_only"):
        pairs = build(fmt, traces, traces)
        assert [p["completion"] for p in pairs] == [" ao\n"]
        assert pairs[0]["prompt"].endswith('Q: Take the last letters of the words in "Ada Bo" and concatenate them.\nA:')


def test_answer_only_keeps_a_final_response_and_label_only_the_verdict_alone():
    judged = Trace("x", "bsm", "A", [Call("p", "merge", Usage(1, 9))],
                   teacher="bsm", final_response="Response A covers every criterion.\n\n[[A]]")
    assert build("answer_only", [judged], [judged])[0]["completion"] == " Response A covers every criterion.\n[[A]]\n"
    assert build("label_only", [judged], [judged])[0]["completion"] == " A\n"


def test_full_reasoning_keeps_each_distinct_rationale_folded_to_single_lines_and_capped():
    traces = [pal_trace(0, PROGRAM_A), pal_trace(1, PROGRAM_B), pal_trace(2, PROGRAM_A), pal_trace(0, PROGRAM_B, teacher="cot")]
    pairs = build("full_reasoning", traces, traces)
    assert [p["completion"] for p in pairs] == [
        ' words = ["Ada", "Bo"]\nprint("".join(w[-1] for w in words))\nThe answer is ao.\n',  # blank line folded
        ' print("ao")\nThe answer is ao.\n',
    ]
    assert [(p["teacher"], p["sample"]) for p in pairs] == [("pal", 0), ("pal", 1)]
    assert len(build("full_reasoning", traces, traces, max_per_input=1)) == 1
    assert answers_on_several_lines(pairs) and not answers_on_several_lines(build("answer_only", traces, traces))


def test_only_kept_outputs_and_kept_inputs_become_pairs():
    right, wrong = pal_trace(0, PROGRAM_A), pal_trace(1, 'print("ab")', answer="ab")
    assert [p["sample"] for p in build("full_reasoning", [right, wrong], [right])] == [0]
    dropped = Verdict("x", False, "tie", None, "self_consistency")
    assert distill_pairs("answer_only", TASK, [EXAMPLE], [dropped], {}, shots=2) == []


def test_compressed_reasoning_uses_the_rewrites_and_needs_one_for_every_kept_output():
    trace = pal_trace(0, PROGRAM_A)
    rows = [{"id": "x", "rewrites": [{"teacher": "pal", "sample": 0, "original": PROGRAM_A, "rewritten": PROGRAM_B, "accepted": True}]}]
    pairs = build("compressed_reasoning", [trace], [trace], rewritten=rewritten_rationales(rows))
    assert pairs[0]["completion"] == ' print("ao")\nThe answer is ao.\n'
    rows[0]["rewrites"][0]["accepted"] = False  # a rejected rewrite: the original rationale stays
    assert build("compressed_reasoning", [trace], [trace], rewritten=rewritten_rationales(rows))[0]["completion"].startswith(" words")
    with pytest.raises(ValueError, match="no rewritten rationale"):
        build("compressed_reasoning", [trace], [trace], rewritten={})


def test_a_rewrite_is_accepted_only_when_shorter_non_empty_and_keeping_the_answer():
    assert judge_rewrite(TASK, PROGRAM_A, PROGRAM_B, "ao") == (True, f"{len(PROGRAM_A)} -> {len(PROGRAM_B)} characters")
    assert judge_rewrite(TASK, PROGRAM_A, "  ", "ao") == (False, "empty rewrite")
    assert not judge_rewrite(TASK, PROGRAM_B, PROGRAM_A, "ao")[0]
    assert judge_rewrite(TASK, PROGRAM_A, "so the answer is ab.", "ao") == (False, "states another answer: 'ab'")
    assert judge_rewrite(TASK, PROGRAM_A, "the answer is AO.", "ao")[0]


def test_the_rationale_of_a_method_without_one_is_its_last_output():
    trace = Trace("x", "rar", "ao", [Call("p", "rephrased", Usage()), Call("p", "Ada ends in a.\n\nSo ao.", Usage())])
    assert rationale_of(trace) == "Ada ends in a.\nSo ao."


def test_step_by_step_gives_a_label_and_a_rationale_pair_per_output_with_task_prefixes():
    """Hsieh et al. 2023: "[label]" -> the answer, "[rationale]" -> the rationale alone; one label pair when they agree."""
    from s2distill.distill.pairs import evaluated_as

    traces = [pal_trace(0, PROGRAM_A), pal_trace(0, PROGRAM_B, teacher="cot")]
    pairs = build("step_by_step", traces, traces)
    assert [(p["task"], p["completion"]) for p in pairs] == [
        ("label", " ao\n"), ("rationale", ' words = ["Ada", "Bo"]\nprint("".join(w[-1] for w in words))\n'),
        ("rationale", ' print("ao")\n')]
    assert all(p["prompt"].startswith(f"[{p['task']}] Q: ") for p in pairs)
    assert evaluated_as(pairs) == (False, "[label] ")  # asked with the label prefix, one line
    assert evaluated_as(build("full_reasoning", traces, traces)) == (True, "")
    assert len(build("step_by_step", traces, traces, max_per_input=1)) == 2


def test_the_students_question_suffix_is_in_every_question_of_the_training_prompt():
    """Yu et al. 2024 Table 6: "{question} Flip means reverse." is the student's prompt, in training too."""
    from s2distill.lm import FakeLM
    from s2distill.methods.direct import direct

    suffix = " Flip means reverse."
    [pair] = build("answer_only", [pal_trace(0, PROGRAM_A)], [pal_trace(0, PROGRAM_A)], question_suffix=suffix)
    assert pair["prompt"].endswith(f'"Ada Bo" and concatenate them.{suffix}\nA:')
    assert pair["prompt"].count(f".{suffix}\nA:") == 3  # two exemplars and the question
    asked = direct(TASK, shots=2, question_suffix=suffix)(EXAMPLE, FakeLM(default=" ao"))
    assert asked.calls[0].prompt == pair["prompt"]
    from s2distill.config.recipe import validate_recipe
    from s2distill.student.prompt import prompt_spec

    recipe = validate_recipe({"task": {"name": "last_letters"},
                              "student": {"method": {"name": "direct", "options": {"question_suffix": suffix}}}})
    for multiline in (False, True):  # the saved prompt (predict, export) carries it, reasoning students' too
        assert prompt_spec(recipe, TASK, multiline=multiline)["prompt"] == "Q: {question}" + suffix + "\nA:"
