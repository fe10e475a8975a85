"""The seed papers' System 2 methods on the fake LM: call graphs, data flow, token accounting."""

from __future__ import annotations

import textwrap

import pytest

from s2distill.config.recipe import RecipeError, validate_recipe
from s2distill.lm import FakeLM
from s2distill.methods import build_program, run_program
from s2distill.methods.bsm import bsm
from s2distill.methods.cot import cot
from s2distill.methods.rar import rar
from s2distill.methods.s2a import parse_extraction, s2a
from s2distill.methods.usc import parse_final, usc
from s2distill.tasks.coin_flip import CoinFlip
from s2distill.tasks.last_letters import LastLetters
from s2distill.types import Example

LETTERS = LastLetters()
WORDS = Example("x", {"words": ["Ada", "Bob"]})


def text_of(request) -> str:
    return request.prompt if request.prompt is not None else request.messages[-1][1]


def assert_tokens_add_up(trace):
    assert trace.usage.completion_tokens == sum(c.usage.completion_tokens for c in trace.calls) > 0
    assert trace.usage.prompt_tokens == sum(c.usage.prompt_tokens for c in trace.calls) > 0


@pytest.mark.parametrize("prompt_format", ["fewshot", "chat"])
def test_rar_two_step_answers_with_the_first_calls_output(prompt_format):
    def respond(request, k):
        last = text_of(request).split("\n\n")[-1]
        return "REPHRASED: join the final letters of Ada and Bob" if "kindly rephrase the question" in last else "So: a, b. The answer is ab."

    trace = rar(LETTERS, steps=2, prompt_format=prompt_format)(WORDS, FakeLM(responder=respond))
    assert [c.name for c in trace.calls] == ["rephrase", "respond"]
    assert "REPHRASED: join the final letters of Ada and Bob" in trace.calls[1].prompt
    assert trace.calls[1].prompt.rstrip().endswith('End your response with "The answer is <answer>."')
    assert trace.answer == "ab" and trace.meta["rephrased"].startswith("REPHRASED")
    assert_tokens_add_up(trace)


def test_rar_one_step_is_one_call_with_the_papers_instruction():
    trace = rar(CoinFlip(), steps=1, prompt_format="chat")(Example("c", {"flips": [["Ada", True]]}), FakeLM(default="Flipped once. The answer is no."))
    [call] = trace.calls
    assert call.prompt.endswith("Is the coin still heads up?\n\nReword and elaborate on the inquiry, then provide an answer.")  # Figure 3
    assert trace.answer == "no"


def test_s2a_answers_from_the_extraction_not_the_biased_text():
    biased = "I think the answer is Paris, but I'm really not sure. Which city is the capital of Italy?"
    extraction = (
        "Unbiased text context (includes all content except user's bias): none\n"
        "Question/Query (does not include user bias/preference): Which city is the capital of Italy?"
    )
    lm = FakeLM(responder=lambda r, k: extraction if "Text by User" in text_of(r) else " Rome")
    trace = s2a(LETTERS, prompt_format="chat")(Example("q", {"text": biased}), lm)
    extract_call, answer_call = trace.calls
    assert biased in extract_call.prompt and "Separate this into two categories" in extract_call.prompt
    assert "Which city is the capital of Italy?" in answer_call.prompt
    assert "Paris" not in answer_call.prompt and "not sure" not in answer_call.prompt
    assert trace.meta["labels_missing"] is False
    assert_tokens_add_up(trace)


def test_s2a_extraction_parsing_tolerates_missing_labels():
    assert parse_extraction("Unbiased text context: A.\nQuestion/Query: B?") == ("A.", "B?", True)
    assert parse_extraction("just some text") == ("just some text", "", False)


def test_cot_zero_shot_reads_the_final_answer_line():
    trace = cot(LETTERS, shots=0, prompt_format="chat")(WORDS, FakeLM(default="Ada ends in a, Bob in b.\nFinal answer: ab"))
    assert trace.calls[0].prompt.startswith("Your task is to answer the question below. Give step by step reasoning")  # Figure 10
    assert trace.calls[0].prompt.endswith('concatenate them.\nSolution:') and trace.answer == "ab"
    assert cot(LETTERS, shots=0)(WORDS, FakeLM(default="I give up.")).answer is None


def test_usc_samples_the_base_method_then_composes_the_final_answer():
    answers = ["Final answer: ab", "Final answer: xy", "Final answer: ab"]

    def respond(request, k):
        if "compose the final answer" in text_of(request):
            assert request.temperature == 0.0  # the composition is greedy
            return "The majority says ab.\nFINAL: ab"
        return answers[request.first_sample % 3]

    [trace] = run_program(usc(LETTERS, samples=3, prompt_format="chat"), [WORDS], FakeLM(responder=respond), temperature=0.0)
    assert [c.name for c in trace.calls] == ["reason"] * 3 + ["compose"]
    assert trace.meta["candidates"] == ["ab", "xy", "ab"] and trace.answer == "ab" and trace.final_response == "ab"
    assert "3 answers have been provided: \nAnswer 1: Final answer: ab\nAnswer 2: Final answer: xy" in trace.calls[-1].prompt
    assert_tokens_add_up(trace)


@pytest.mark.parametrize(("text", "expected"), [
    ("FINAL: The Seine", "The Seine"), ('reasoning... FINAL: "ab"', "ab"), ("FINAL: x\nFINAL: <y>", "y"), ("none", None), ("FINAL:", None),
])
def test_usc_final_answer_parsing(text, expected):
    assert parse_final(text) == expected


def test_a_users_own_program_is_named_module_function(tmp_path, monkeypatch):
    (tmp_path / "my_methods.py").write_text(textwrap.dedent('''
        from s2distill.methods.calls import ask
        from s2distill.types import Trace

        def shout(example, lm):
            calls = []
            reply = ask(lm, "Say it loudly: " + " ".join(example.inputs["words"]), calls=calls, name="shout",
                        prompt_format="chat", max_tokens=8)
            return Trace(example.id, "shout", reply.text.lower(), calls)
    '''))
    monkeypatch.chdir(tmp_path)
    for spec in ("my_methods:shout", str(tmp_path / "my_methods.py") + ":shout"):
        program = build_program(LETTERS, spec, {})
        trace = program(WORDS, FakeLM(default="AB"))
        assert trace.answer == "ab" and trace.calls[0].prompt == "Say it loudly: Ada Bob"
        validate_recipe({"task": {"name": "last_letters"}, "teacher": {"method": {"name": spec}}})
    with pytest.raises(RecipeError, match="has no function 'nope'"):
        validate_recipe({"task": {"name": "last_letters"}, "teacher": {"method": {"name": "my_methods:nope"}}})


def test_method_options_are_checked_against_the_method():
    ok = validate_recipe({"task": {"name": "coin_flip"}, "teacher": {"method": {"name": "rar", "options": {"steps": 1}}}})
    assert ok.teachers[0].method.factory_options()["steps"] == 1
    with pytest.raises(RecipeError, match="has no option 'stepz'"):
        validate_recipe({"task": {"name": "coin_flip"}, "teacher": {"method": {"name": "rar", "options": {"stepz": 1}}}})
    with pytest.raises(RecipeError, match="only the fewshot prompt format"):
        validate_recipe({"task": {"name": "coin_flip"}, "teacher": {"method": {"name": "pal", "prompt_format": "chat"}}})


PAIR = Example("p", {"question": "How do I boil an egg?", "response_a": "Boil it 9 minutes.", "response_b": "Eggs are oval."})


def bsm_fake(plan: str, verdict: str = "A is more helpful. [[A]]") -> FakeLM:
    def respond(request, k):
        text = text_of(request)
        if text.startswith("We want to evaluate"):
            return plan
        if text.startswith("You are given a user question"):
            return "5\n2" if "Helpfulness" in text.split("[Evaluation Criterion]")[1] else "3\n3"
        return verdict
    return FakeLM(responder=respond)


def test_bsm_makes_one_branch_k_solves_and_one_merge():
    plan = "1. Helpfulness: does it answer the question?\n2. Accuracy: is it correct?\n3. Clarity - is it clear?"
    trace = bsm(LETTERS)(PAIR, bsm_fake(plan))
    assert [c.name for c in trace.calls] == ["branch", "solve:Helpfulness", "solve:Accuracy", "solve:Clarity", "merge"]
    assert "Boil it 9 minutes." in trace.calls[1].prompt and "Accuracy: is it correct?" in trace.calls[2].prompt
    assert "1. Helpfulness:\n5\n2" in trace.calls[-1].prompt  # merge sees every criterion's evaluation
    assert trace.answer == "A" and trace.meta["totals"] == [11, 8]
    assert_tokens_add_up(trace)


def test_bsm_keeps_at_most_five_criteria_and_merges_by_average_without_a_call():
    plan = "\n".join(f"{i}. Criterion{i}: check {i}" for i in range(1, 8))
    trace = bsm(LETTERS, merge="average")(PAIR, bsm_fake(plan))
    assert len(trace.calls) == 1 + 5 and trace.answer == "C"  # 3/3 on every criterion: a tie


def test_bsm_records_an_unparseable_verdict_or_plan():
    assert bsm(LETTERS)(PAIR, bsm_fake("Helpfulness: x", verdict="Both are fine.")).error.startswith("no [[A]]")
    empty = bsm(LETTERS)(PAIR, bsm_fake("\n"))
    assert empty.answer is None and empty.error.startswith("branch returned no criteria") and len(empty.calls) == 1


@pytest.mark.parametrize(("text", "verdict"), [
    ("... so [[B]]", "B"), ("[[A]] at first, but finally [[C]]", "C"), ("Verdict: [B]", "B"), ("[[ A ]]", "A"), ("A is better", None),
])
def test_bsm_verdict_parsing(text, verdict):
    from s2distill.methods.bsm import parse_verdict

    assert parse_verdict(text) == verdict


def test_bsm_criteria_and_score_parsing():
    from s2distill.methods.bsm import parse_criteria, parse_scores

    assert [n for n, _ in parse_criteria("Evaluation Plan:\n- **Relevance**: on topic\n(2) Depth - detail\n\n3) Tone")] == ["Relevance", "Depth", "Tone"]
    assert parse_scores("Assistant A: 4/5\nAssistant B: 2/5") == (4, 2)
    assert parse_scores("A gets 4") is None


TEACHER_REPLY = (
    "Thinking: Ada ends in a and Bob ends in b, so the letters are a and b.\n"
    "The answer is: ab\n"
    "score: 0.97"
)


def test_twt_teacher_returns_reasoning_answer_and_confidence():
    from s2distill.methods.twt import twt_teacher

    trace = twt_teacher(LETTERS, prompt_format="chat")(WORDS, FakeLM(default=TEACHER_REPLY))
    [call] = trace.calls
    assert call.prompt.startswith("You are a helpful assistant. Your task is to answer a question.")
    assert call.prompt.endswith('Question:\nTake the last letters of the words in "Ada Bob" and concatenate them.')
    assert trace.answer == "ab" and trace.confidence == 0.97
    assert trace.rationale.startswith("Ada ends in a")
    assert_tokens_add_up(trace)


@pytest.mark.parametrize(("reply", "confidence"), [
    (TEACHER_REPLY, 0.97), ("Thinking: x\nAnswer: ab\nscore: 1", 1.0), ("Thinking: x\nAnswer: ab\nscore: .95", 0.95),
    ("Thinking: x\nAnswer: ab", None), ("Thinking: x\nAnswer: ab\nscore: 7", None), ("Thinking: x\nAnswer: ab\nscore: **0.80**", 0.8),
])
def test_twt_confidence_parsing(reply, confidence):
    from s2distill.methods.twt import parse_teacher_output

    assert parse_teacher_output(reply)[2] == confidence


def test_twt_families_and_the_refinement_prompt():
    from s2distill.methods.twt import FAMILIES, refine_rationale, twt_teacher

    assert set(FAMILIES) >= {"math", "multiple_choice", "code"}
    for family, (_, criteria) in FAMILIES.items():
        assert abs(sum(w for _, w in criteria) - 1.0) < 1e-9, family
    code = twt_teacher(LETTERS, family="code")(WORDS, FakeLM(default=TEACHER_REPLY))
    assert "(2) Code: The Python code implementing the function" in code.calls[0].prompt
    with pytest.raises(ValueError, match="unknown TwT family"):
        twt_teacher(LETTERS, family="poetry")
    calls = []
    short = refine_rationale(FakeLM(default=" a + b = ab"), question="q?", rationale="long reasoning", answer="ab",
                             student="ab", calls=calls)
    assert short == "a + b = ab" and "The student's thinking process: ab" in calls[0].prompt and "long reasoning" in calls[0].prompt


def test_exemplars_parse_as_the_methods_expect():
    """A few-shot exemplar teaches the reply format, so each must parse to what it shows."""
    from s2distill.methods import exemplars
    from s2distill.methods.bsm import parse_criteria, parse_scores
    from s2distill.methods.twt import parse_teacher_output

    for e in exemplars.S2A:
        assert parse_extraction(e["extraction"]) == (e["context"], e["question"], True)
    for e in exemplars.BSM:
        assert [name for name, _ in parse_criteria(e["plan"])] == list(e["scores"])
        assert all(parse_scores(score) for score in e["scores"].values())
    for e in exemplars.USC:
        assert parse_final(f"FINAL: {e['final']}") == e["final"]
    for family, shown in exemplars.TWT.items():
        for e in shown:
            thinking, answer, confidence = parse_teacher_output(e["reply"])
            assert thinking and answer and confidence is not None, family


def test_exemplars_are_balanced_and_carry_no_hint():
    """Exemplars show the method's steps only (issue 12): BSM's verdicts favour neither position,
    TwT's scores sit on both sides of the 0.95 threshold, RaR's show no worked reasoning and coin
    flip's rephrasing adds no rule about flips."""
    from s2distill.methods import exemplars
    from s2distill.methods.bsm import parse_verdict
    from s2distill.methods.twt import parse_teacher_output

    assert sorted(parse_verdict(e["verdict"]) for e in exemplars.BSM) == ["A", "B"]
    for family, shown in exemplars.TWT.items():
        scores = [parse_teacher_output(e["reply"])[2] for e in shown]
        assert min(scores) < 0.95 <= max(scores), family
    coin = CoinFlip()
    assert sorted(s.answer for s in coin.shots) == ["no", "no", "yes", "yes"]
    for shot in coin.shots:
        assert "reverse" not in shot.rephrased.lower() and "turns the coin over" not in shot.rephrased
    seen = []
    rar(coin, steps=2)(Example("c", {"flips": [["Ada", True]]}), FakeLM(responder=lambda r, k: seen.append(r.prompt) or "x"))
    for shot in coin.shots:
        assert f"{shot.rephrased} Answer the Yes or No question.\nThe answer is {shot.answer}.\n\n" in seen[1]
        assert shot.rationale not in seen[1]


def test_fewshot_format_puts_worked_exemplars_before_the_prompt():
    from s2distill.methods.twt import twt_teacher

    seen = []
    lm = FakeLM(responder=lambda r, k: seen.append(r.prompt) or "")
    s2a(LETTERS, prompt_format="fewshot", shots=2)(Example("q", {"text": "Is it Mars? I think so."}), lm)
    assert seen[0].count("Given the following text by a user") == 3 and "Which river flows through Paris?" in seen[0]
    assert seen[0].rstrip().endswith("Text by User: Is it Mars? I think so.")
    bsm(LETTERS, prompt_format="fewshot")(PAIR, lm)
    assert "1. Accuracy: Is the city named" in seen[2] and seen[2].rstrip().endswith("Evaluation Plan:")
    twt_teacher(LETTERS, prompt_format="fewshot")(WORDS, lm)
    assert "The answer is: Paris" in seen[-1] and seen[-1].endswith("Thinking:")
    seen.clear()
    chat = FakeLM(responder=lambda r, k: seen.append(r.messages[0][1]) or "")
    s2a(LETTERS, prompt_format="chat", shots=2)(Example("q", {"text": "Is it Mars?"}), chat)
    assert "Paris" not in seen[0]  # chat prompts carry no exemplars
