"""Programs run concurrently and their calls reach the backend as batches, in order."""

from __future__ import annotations

from s2distill.lm import FakeLM
from s2distill.methods import run_program
from s2distill.types import Call, Example, Request, Trace


class CountingFake(FakeLM):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.batch_sizes: list[int] = []

    def generate(self, requests):
        self.batch_sizes.append(len(requests))
        return super().generate(requests)


def two_step(example: Example, lm) -> Trace:
    [first] = lm.generate([Request(prompt=f"rephrase {example.inputs['q']}")])[0]
    [second] = lm.generate([Request(prompt=f"answer {first.text}")])[0]
    return Trace(example.id, "two_step", second.text, [Call("", first.text, first.usage), Call("", second.text, second.usage)])


def test_calls_of_concurrent_programs_are_batched_and_results_stay_in_order():
    lm = CountingFake(responder=lambda r, k: r.prompt.upper())
    examples = [Example(f"e{i}", {"q": f"q{i}"}) for i in range(6)]
    traces = run_program(two_step, examples, lm, workers=6)
    assert [t.example_id for t in traces] == [e.id for e in examples]
    assert [t.answer for t in traces] == [f"ANSWER REPHRASE Q{i}" for i in range(6)]
    assert sum(lm.batch_sizes) == 12
    assert lm.batch_sizes == [6, 6]  # all first calls in one batch, then all second calls


def test_samples_get_their_own_sample_index_and_the_run_temperature():
    lm = CountingFake(responder=lambda r, k: f"{k}@{r.temperature}")
    traces = run_program(
        lambda e, m: Trace(e.id, "t", m.generate([Request(prompt="x")])[0][0].text),
        [Example("a", {})], lm, samples=3, temperature=0.7,
    )
    assert [t.answer for t in traces] == ["0@0.7", "1@0.7", "2@0.7"]
    assert [t.sample for t in traces] == [0, 1, 2]


def test_a_failing_backend_raises_instead_of_hanging():
    lm = FakeLM(responder=lambda r, k: "x", fail_after=2)
    examples = [Example(f"e{i}", {"q": i}) for i in range(5)]
    try:
        run_program(two_step, examples, lm, workers=3)
    except RuntimeError as exc:
        assert "simulated failure" in str(exc)
    else:
        raise AssertionError("the backend failure was swallowed")


def test_an_interrupted_run_stops_queued_programs():
    import threading
    import time

    calls = []
    lm = FakeLM(responder=lambda r, k: calls.append(r.prompt) or time.sleep(0.005) or "x")  # a model takes time
    started = threading.Event()

    def program(example, lm_):
        lm_.generate([Request(prompt=example.id)])
        if example.id == "e0":
            started.set()
            raise KeyboardInterrupt  # stands in for Ctrl-C landing while programs run
        return Trace(example.id, "p", "x")

    examples = [Example(f"e{i}", {}) for i in range(200)]
    try:
        run_program(program, examples, lm, workers=2)
    except KeyboardInterrupt:
        pass
    assert started.is_set() and len(calls) < 20  # the other ~198 programs never ran


def test_chat_requests_go_through_the_models_chat_template(tmp_path):
    """A messages request is rendered by the tokenizer's chat template; a raw prompt is not."""
    import shutil

    from s2distill.lm.hf import HFLM
    from s2distill.lm.tiny import tiny_model_dir

    folder = tmp_path / "tiny-chat"
    shutil.copytree(tiny_model_dir(), folder)
    lm = HFLM(folder)
    tokenizer = lm.tokenizer
    tokenizer.chat_template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}<|assistant|>"
    chat = Request(messages=(("user", "Hi there"),), max_tokens=2, temperature=0.0)
    assert lm._prompt_text(chat) == "<|user|>Hi there<|assistant|>"
    assert lm._prompt_text(Request(prompt="Hi there", max_tokens=2)) == "Hi there"
    [[completion]] = lm.generate([chat])
    assert completion.usage.prompt_tokens == len(tokenizer("<|user|>Hi there<|assistant|>").input_ids)
