"""System 1 and System 2 programs on the fake LM: prompts, parsing, and failures recorded."""

from __future__ import annotations

from s2distill.lm import FakeLM
from s2distill.methods import METHODS, direct_prompt
from s2distill.methods.cot import cot
from s2distill.methods.direct import direct
from s2distill.methods.pal import pal
from s2distill.tasks.last_letters import LastLetters
from s2distill.types import Example

TASK = LastLetters()
EXAMPLE = Example("x", {"words": ["Ada", "Bob"]})


def fake(text: str) -> FakeLM:
    return FakeLM(responder=lambda request, k: text)


def test_direct_prompt_is_few_shot_and_ends_with_the_question():
    prompt = direct_prompt(TASK, EXAMPLE, shots=2)
    assert prompt.count("Q: ") == 3 and prompt.endswith('"Ada Bob" and concatenate them.\nA:')
    assert direct(TASK, shots=2)(EXAMPLE, fake(" ab")).answer == "ab"


def test_pal_runs_the_program_and_counts_its_tokens():
    program = 'words = ["Ada", "Bob"]\nprint("".join(w[-1] for w in words))'
    trace = pal(TASK)(EXAMPLE, fake(program))
    assert trace.answer == "ab" and trace.error is None
    assert trace.usage.completion_tokens == trace.calls[0].usage.completion_tokens > 0
    assert trace.calls[0].prompt.endswith('# Q: Take the last letters of the words in "Ada Bob" and concatenate them.\n')


def test_unparseable_answers_are_recorded_not_fatal():
    cases = {
        "print(undefined)": "program failed: NameError",
        "while True: pass": "program failed: timed out",
        "print('!!!')": "unparseable program output",
        "x = 1": "unparseable program output",
        "import os; os.remove('/etc/hostname')": "program failed: PermissionError",
    }
    for code, reason in cases.items():
        trace = pal(TASK, timeout=1.0)(EXAMPLE, fake(code))
        assert trace.answer is None
        assert trace.error.startswith(reason), (code, trace.error)
    assert direct(TASK)(EXAMPLE, fake(" ???")).answer is None
    assert cot(TASK)(EXAMPLE, fake("I am not sure.")).error.startswith("no final answer")


def test_cot_extracts_the_final_answer():
    text = ' The last letter of "Ada" is "a". The last letter of "Bob" is "b". The answer is ab.'
    assert cot(TASK)(EXAMPLE, fake(text)).answer == "ab"


def test_every_registered_method_builds_and_describes_itself():
    for factory, description in METHODS.values():
        assert description and callable(factory(TASK))


def test_stop_strings_do_not_fire_in_leading_whitespace():
    from s2distill.lm.base import truncate_at_stop

    assert truncate_at_stop("\n\n1. Helpfulness\n2. Accuracy\n\nmore", ("\n\n",)) == ("\n\n1. Helpfulness\n2. Accuracy", True)
    assert truncate_at_stop(" rb\nQ: next", ("\n",)) == (" rb", True)
    assert truncate_at_stop("\n\n", ("\n\n",)) == ("\n\n", False)


def test_pal_runs_a_deterministic_program_once_and_a_random_one_every_time(monkeypatch):
    import importlib

    from s2distill.sandbox import SandboxResult

    pal_module = importlib.import_module("s2distill.methods.pal")  # the package re-exports a function `pal`

    runs = []
    monkeypatch.setattr(pal_module, "run_python", lambda code, **kw: runs.append(code) or SandboxResult("ab\n", "", 0))
    monkeypatch.setattr(pal_module, "_memo", type(pal_module._memo)())
    fixed = 'print("".join(w[-1] for w in ["Ada", "Bob"]))'
    rolled = 'import random\nprint(random.choice(["ab", "ba"]))'
    for _ in range(3):
        assert pal_module.run_once(fixed, timeout=5.0, memory_mb=512).stdout == "ab\n"
        pal_module.run_once(rolled, timeout=5.0, memory_mb=512)
    assert runs.count(fixed) == 1 and runs.count(rolled) == 3
