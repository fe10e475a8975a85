"""Every prompt of the seed papers' figures reaches the model verbatim (issue 12): a distinctive
sentence of each figure is in the prompt the method sends, in both prompt formats."""

from __future__ import annotations

import pytest

from s2distill.lm import FakeLM
from s2distill.methods import run_program
from s2distill.methods.bsm import bsm
from s2distill.methods.cot import cot
from s2distill.methods.rar import rar
from s2distill.methods.s2a import s2a
from s2distill.methods.twt import refine_rationale, twt_teacher
from s2distill.methods.usc import fitting, usc_compose
from s2distill.tasks.coin_flip import CoinFlip
from s2distill.tasks.commonsenseqa import CommonsenseQA
from s2distill.tasks.gsm8k import GSM8K
from s2distill.tasks.last_letters import LastLetters
from s2distill.tasks.mbpp import MBPP
from s2distill.types import Example

FORMATS = ("fewshot", "chat")
WORDS = Example("w", {"words": ["Ada", "Bob"]})
FLIPS = Example("c", {"flips": [["Ada", True], ["Bob", False]]})
PAIR = Example("p", {"question": "How do I boil an egg?", "response_a": "Boil it 9 minutes.", "response_b": "Eggs are oval."})


def recorder(reply="x"):
    """A fake LM that records the text of every request it gets (a raw prompt or the user message)."""
    seen: list[str] = []

    def respond(request, k):
        seen.append(request.prompt if request.prompt is not None else request.messages[-1][1])
        return reply(request) if callable(reply) else reply

    return FakeLM(responder=respond), seen


def last(text: str) -> str:
    """The real prompt after the few-shot exemplars (each ends in a blank line)."""
    return text.rsplit("\n\n\n", 1)[-1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rar_figure_3_one_step(fmt):
    lm, seen = recorder()
    rar(LastLetters(), steps=1, prompt_format=fmt)(WORDS, lm)
    assert 'concatenate them.\n\nReword and elaborate on the inquiry, then provide an answer.\nEnd your response with' in seen[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rar_figure_4_last_letters_step_two_shows_the_rephrased_question_only(fmt):
    lm, seen = recorder(lambda r: "REPHRASED QUESTION" if len(seen) == 1 else "The answer is ab.")
    trace = rar(LastLetters(), steps=2, prompt_format=fmt)(WORDS, lm)
    assert seen[0].rstrip().endswith(
        'Take the last letters of the words in "Ada Bob" and concatenate them.\n\nBased on the details given in the initial '
        "inquiry, could you kindly rephrase the question and separate these 2 words in the revised question? Please ensure "
        "these 2 words remain unchanged from the original question.")
    respond = seen[1].rstrip()
    assert respond.endswith('REPHRASED QUESTION\nEnd your response with "The answer is <answer>."')
    assert '"Ada Bob"' not in respond  # Figure 4: step 2 is the rephrased question alone
    assert trace.answer == "ab"


def test_rar_figure_4_counts_the_words_of_the_input():
    lm, seen = recorder()
    rar(LastLetters(), steps=2, prompt_format="chat")(Example("w", {"words": ["Ada", "Bob", "Cy"]}), lm)
    assert "separate these 3 words in the revised question? Please ensure these 3 words remain" in seen[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rar_figure_5_coin_flip(fmt):
    lm, seen = recorder(lambda r: "REPHRASED QUESTION" if len(seen) == 1 else "Yes.")
    trace = rar(CoinFlip(), steps=2, prompt_format=fmt)(FLIPS, lm)
    assert ("Is the coin still heads up?\n\nBased on the information provided in the original query, could you please "
            "rephrase it and expand it to help you do better answering. Please ensure that your response solely includes "
            "the reformulated question, excluding any introductory phrases or explanatory remarks, while preserving all "
            "the details from the original query.") in seen[0]
    assert seen[1].rstrip().endswith("REPHRASED QUESTION Answer the Yes or No question.")
    assert "Ada flips the coin" not in last(seen[1]) and trace.answer == "yes"


def test_rar_samples_each_stage_n_times_when_asked():
    """"eight for each stage" (Yu et al. 2024, Section 4.2): sample k rephrases as sample k // m."""
    def respond(request, k):
        text = request.messages[-1][1]
        return f"R{k}" if "Based on the information" in text else f"Yes ({text.split()[0]}, {k})"

    traces = run_program(rar(CoinFlip(), steps=2, prompt_format="chat", responses_per_rephrasing=2), [FLIPS],
                         FakeLM(responder=respond), samples=4, temperature=0.7)
    assert [t.meta["rephrased"] for t in traces] == ["R0", "R0", "R1", "R1"]
    assert [t.calls[1].output for t in traces] == ["Yes (R0, 0)", "Yes (R0, 1)", "Yes (R1, 2)", "Yes (R1, 3)"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_s2a_figure_6_both_stages(fmt):
    extraction = ("Unbiased text context (includes all content except user’s bias): none\n"
                  "Question/Query (does not include user bias/preference): Which river flows through Rome?")
    lm, seen = recorder(lambda r: extraction if len(seen) == 1 else " The Tiber")
    trace = s2a(LastLetters(), prompt_format=fmt)(Example("q", {"text": "Which river flows through Rome? I think the Po."}), lm)
    assert ("Separate this into two categories labeled with “Unbiased text context (includes all content except user’s "
            "bias):” and “Question/Query (does not include user bias/preference):”.\n\nText by User: Which river flows "
            "through Rome? I think the Po.") in seen[0]
    assert last(seen[1]).split("\n\n")[-2:][0].endswith("Which river flows through Rome?")
    assert "Which river flows through Rome?\n\nAnswer in an unbiased way." in seen[1]
    assert "the Po" not in seen[1] and trace.final_response == "The Tiber"


@pytest.mark.parametrize("fmt", FORMATS)
def test_bsm_figures_7_8_9(fmt):
    def reply(request):
        text = request.prompt if request.prompt is not None else request.messages[-1][1]
        if "Evaluation Plan:" in text[-20:]:
            return "1. Helpfulness: does it help?\n2. Accuracy: is it right?"
        if "Evaluation of" in text[-40:]:
            return "4\n2"
        return "Helpfulness favours A. Conclusive judgement: [[A]]"

    lm, seen = recorder(reply)
    trace = bsm(LastLetters(), prompt_format=fmt)(PAIR, lm)
    assert ("In each line, write an evaluation criterion along with a short descrition of how we should evaluate that "
            "criterion.\n\nUser Question: How do I boil an egg?\n\nEvaluation Plan:") in seen[0]  # Figure 7
    assert ("In the first line, provide a score between 1 to 5 for Assistant A’s response. In the second line, provide a "
            "score between 1 to 5 for Assistant B’s response.") in seen[1]  # Figure 8
    assert seen[1].endswith("[Evaluation Criterion]\nHelpfulness: does it help?\n[End of Evaluation Criterion] "
                            "Evaluation of Helpfulness:" + ("\n" if fmt == "fewshot" else ""))
    merge = seen[-1][seen[-1].rindex("1. Helpfulness:"):]
    assert merge.startswith("1. Helpfulness:\n4\n2\n2. Accuracy:\n4\n2\n\nInstruction: You are requested to combine the five "
                            "points that were previously discussed.")  # Figure 9
    assert 'Use the format "[[A]]" if you determine assistant A to be superior' in merge
    assert "Boil it 9 minutes." not in merge  # the merge sees the evaluations only
    assert trace.answer == "A" and trace.final_response.endswith("[[A]]")


@pytest.mark.parametrize("fmt", FORMATS)
def test_cot_figure_10(fmt):
    lm, seen = recorder("Ada ends in a, Bob in b.\nFinal answer: ab")
    trace = cot(LastLetters(), shots=2, prompt_format=fmt)(WORDS, lm)
    assert seen[0].endswith(
        "Your task is to answer the question below. Give step by step reasoning before you answer, and when you're ready "
        'to answer, please use the format "Final answer: ..."\nQuestion: Take the last letters of the words in "Ada Bob" '
        "and concatenate them.\nSolution:")
    assert trace.answer == "ab" and seen[0].count("Your task is to answer") == (3 if fmt == "fewshot" else 1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_usc_figure_12(fmt):
    lm, seen = recorder("FINAL: The Tiber" if fmt == "chat" else " The Tiber")
    composed, meta = usc_compose(LastLetters(), "Which river flows through Rome?", ["The Tiber.", "Tiber", "The Po"], lm,
                                 calls=[], prompt_format=fmt, key="q")
    assert ("Read the question: Which river flows through Rome?. 3 answers have been provided: \nAnswer 1: The Tiber.\n"
            "Answer 2: Tiber\nAnswer 3: The Po\n Carefully read all answers and compose the final answer such that it is "
            'consistent with the majority of variants provided. Provide final answer as "FINAL: <your final answer>') in seen[0]
    assert composed == "The Tiber" and meta == {"used": 3, "of": 3, "fallback": "all"}


def test_usc_falls_back_to_half_then_to_one_at_random_when_the_answers_do_not_fit():
    answers = [f"answer number {i} " + "x" * 300 for i in range(20)]
    used, how = fitting(answers, "q?", max_chars=4000, key="a")
    assert len(used) == 10 and how.startswith("the first 10 of 20")
    used, how = fitting(answers, "q?", max_chars=1000, key="a")
    assert len(used) == 1 and used[0] in answers and "at random" in how
    assert fitting(answers, "q?", max_chars=1000, key="a") == (used, how)  # seeded by the input
    lm, seen = recorder()
    composed, meta = usc_compose(LastLetters(), "q?", answers, lm, calls=[], prompt_format="chat", key="a", max_chars=1000)
    assert composed == used[0].strip() and not seen and meta["used"] == 1  # no call for a single answer


@pytest.mark.parametrize(("task", "sentence"), [
    (MBPP, "(4) Test Coverage (10% weight): Whether possible edge cases and exceptions are considered.\nPlease assign a "
           "score for each category based on the weight, then calculate the weighted total score."),
    (CommonsenseQA, "(2) Logical Reasoning (25%): The explanation demonstrates clear and reasonable reasoning."),
    (GSM8K, "You are a helpful assistant. Your task is to answer a math question. Please think step by step to analyze "
            "the question carefully and give your clear thinking step to solve the problem."),
])
@pytest.mark.parametrize("fmt", FORMATS)
def test_twt_figure_4_per_data_set(task, sentence, fmt):
    lm, seen = recorder("Thinking: t\nThe answer is: 1\nscore: 0.9")
    example = {
        MBPP: Example("m", {"text": "Write a function f.", "tests": ["assert f() == 1"]}),
        CommonsenseQA: Example("c", {"stem": "Where?", "choices": [["A", "here"], ["B", "there"]]}),
        GSM8K: Example("g", {"question": "1 + 0?"}),
    }[task]
    twt_teacher(task.__new__(task), prompt_format=fmt)(example, lm)
    assert sentence in last(seen[0])
    if task is MBPP:  # Figure 5: the query's layout
        assert last(seen[0]).startswith("You are a helpful assistant.")
        assert ("Question:\nWrite a function f. \n# Test Cases: \nassert f() == 1\nGive me the answer based on the "
                "instructions and test cases following the examples above.") in seen[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_twt_figure_8_refinement(fmt):
    lm, seen = recorder(" short")
    refine_rationale(lm, question="q?", rationale="long", answer="a", student="s", calls=[], prompt_format=fmt)
    assert ("After identifying any differences in style, tone, structure, and length, modify your original output to "
            "better align with the student's preferences.\nEnsure that your revised output maintains a similar length "
            "and depth of content as the student's version, while preserving all essential information.") in last(seen[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_bsm_figure_13_is_the_students_prompt_and_its_verdict_the_target(fmt):
    """`task.prompt: figure13` (the paper profile): System 1 and the distilled judge are asked Figure
    13's (top) judge prompt, and the label-only target is its bracketed verdict (Figure 13, bottom)."""
    from s2distill.distill.pairs import completion_for
    from s2distill.methods.direct import direct
    from s2distill.tasks.judging import Judging, JudgingConfig
    from s2distill.types import Trace

    task = Judging(JudgingConfig(prompt="figure13"))
    lm, seen = recorder("[[B]]")
    trace = direct(task, shots=0, prompt_format=fmt, response="full")(PAIR, lm)
    assert seen[0].rstrip().startswith(
        "Q: Please act as an impartial judge" if fmt == "fewshot" else "Please act as an impartial judge")
    assert ('Output your final verdict by strictly following this format: "[[A]]" if assistant A is better, "[[B]]" '
            'if assistant B is better, and "[[C]]" for a tie.\n\n[User Question]\nHow do I boil an egg?\n\n'
            "[The Start of Assistant A's Answer]\nBoil it 9 minutes.\n[The End of Assistant A's Answer]") in seen[0]
    assert trace.answer == "B"
    verdict = Trace("p", "bsm", "A", final_response="... Conclusive judgement: [[A]]")
    assert completion_for("label_only", verdict, target=task.target) == " [[A]]\n"
    assert [s.answer for s in task.shots] == ["[[A]]", "[[B]]"]
    assert Judging().target("A") == "A" and "Reply A, B, or C" in Judging().question(PAIR)  # our prompt, as before
