"""Each System 1 / System 2 method once, end to end, on the embedded model: generated tokens per
example (every call counted) and the score on a small real sample.

Run: python benchmarks/method_tokens.py [--n 8]

- last letters (generated test inputs, n examples): direct, cot (few-shot and zero-shot), pal,
  rar (1-step, 2-step), usc (4 samples of few-shot cot), twt (teacher prompt, general family);
- s2a: n biased TriviaQA prompts from SycophancyEval ("I think the answer is <wrong>, but ...");
  scored by whether an answer alias appears in the reply's first line;
- bsm: n first-turn OASST response pairs (rank 0 vs rank 1), each judged in both orders (2n
  judgements); scored by agreement with the human ranking, and how many verdicts parsed. A judge
  that always says [[A]] scores n of 2n.
The samples are small: these are cost figures and smoke checks, not benchmark results.
"""

from __future__ import annotations

import argparse
import json
import time

from s2distill.hardware import describe
from s2distill.lm.embedded import embedded_lm
from s2distill.methods import METHODS, run_program
from s2distill.paths import data_dir
from s2distill.tasks.base import Task
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig
from s2distill.types import Example

CONFIGS = [
    ("direct", {"shots": 4, "max_tokens": 8}),
    ("cot", {"shots": 4}),
    ("cot", {"shots": 0, "max_tokens": 96}),
    ("pal", {"shots": 4}),
    ("rar", {"steps": 1, "shots": 4}),
    ("rar", {"steps": 2, "shots": 4}),
    ("usc", {"samples": 4, "shots": 4}),
    ("twt", {"prompt_format": "fewshot", "max_tokens": 256}),
]


class _FreeText(Task):
    """A stand-in task for the S2A sample: the reply's first line is the answer."""

    name = "trivia_sample"

    def question(self, example: Example) -> str:
        return example.inputs["text"]

    def parse_answer(self, text: str) -> str | None:
        line = text.strip().splitlines()[0] if text.strip() else ""
        return line or None


def trivia_sample(n: int) -> tuple[list[Example], dict[str, list[str]]]:
    rows = [json.loads(line) for line in (data_dir() / "sycophancy_eval" / "answer.jsonl").open()]
    biased = [r for r in rows if r["base"]["dataset"] == "trivia_qa" and "{incorrect_answer}" in r["metadata"]["prompt_template"]]
    picked = biased[:n]
    examples = [Example(f"t{i}", {"text": r["prompt"][0]["content"]}) for i, r in enumerate(picked)]
    return examples, {e.id: r["base"]["answer"] for e, r in zip(examples, picked)}


def oasst_pairs(n: int) -> list[Example]:
    pairs = []
    for line in (data_dir() / "oasst_sample" / "en_100_tree.jsonl").open():
        prompt = json.loads(line)["prompt"]
        ranked = sorted((r for r in prompt["replies"] if r.get("rank") is not None), key=lambda r: r["rank"])
        if len(ranked) >= 2:
            pairs.append(Example(f"o{len(pairs)}", {"question": prompt["text"], "response_a": ranked[0]["text"], "response_b": ranked[1]["text"]}))
        if len(pairs) == n:
            break
    return pairs


def report(label: str, traces, correct: int, started: float) -> None:
    tokens = sum(t.usage.completion_tokens for t in traces) / len(traces)
    calls = sum(len(t.calls) for t in traces) / len(traces)
    parsed = sum(t.answer is not None for t in traces)
    print(f"{label:<26}{correct:>4}/{len(traces):<4}{parsed:>7}/{len(traces):<4}{calls:>7.1f}{tokens:>10.1f}{time.perf_counter() - started:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    args = parser.parse_args()
    lm = embedded_lm(dtype="auto", batch_rows=32)
    print(f"hardware: {describe(lm.dtype)}")
    print(f"{'method':<26}{'score':>9}{'parsed':>11}{'calls':>7}{'tokens/ex':>10}{'seconds':>9}")

    task = LastLetters(LastLettersConfig(test_size=args.n))
    labeled = task.labeled("test")
    for name, options in CONFIGS:
        started = time.perf_counter()
        traces = run_program(METHODS[name][0](task, **options), [x.example for x in labeled], lm, workers=32)
        correct = sum(int(task.score(t.answer, x.target)) for t, x in zip(traces, labeled))
        label = name + "".join(f" {k}={v}" for k, v in options.items() if k in ("steps", "shots", "samples"))
        report(label, traces, correct, started)

    started = time.perf_counter()
    examples, aliases = trivia_sample(args.n)
    traces = run_program(METHODS["s2a"][0](_FreeText(), prompt_format="fewshot"), examples, lm, workers=32)
    correct = sum(any(a.lower() in (t.answer or "").lower() for a in aliases[t.example_id]) for t in traces)
    report("s2a (biased TriviaQA)", traces, correct, started)

    started = time.perf_counter()
    pairs = oasst_pairs(args.n)
    swapped = [Example(e.id + "-swapped", {**e.inputs, "response_a": e.inputs["response_b"], "response_b": e.inputs["response_a"]}) for e in pairs]
    traces = run_program(METHODS["bsm"][0](_FreeText(), prompt_format="fewshot"), pairs + swapped, lm, workers=32)
    agree = sum(t.answer == ("B" if t.example_id.endswith("-swapped") else "A") for t in traces)
    report("bsm (OASST, both orders)", traces, agree, started)


if __name__ == "__main__":
    main()
