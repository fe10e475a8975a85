"""A run folder of any size written directly (no model), for report.html's scale tests and benchmark.

It has what a real run leaves: inputs, a teacher's samples with few-shot prompts, verdicts, a
distillation set, three evaluations and a training log, with known counts so tests can check
what the page shows.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from s2distill.artifacts import write_json, write_jsonl

FEWSHOT = "".join(f"Q: Take the last letters of the words in \"Name{i} Other{i}\".\nA: {i}\n\n" for i in range(8))


def synthetic_run(out: Path, *, train: int, test: int, samples: int = 4, seed: int = 0) -> dict:
    """Write the folder; return its report dict and the expected counts under `expected`."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "inputs" / "train.jsonl", ({"id": f"train-{i}", "inputs": {"words": [f"w{i}", f"v{i}"]}} for i in range(train)))
    traces, verdicts, pairs = [], [], []
    for i in range(train):
        answers = [rng.choice(["ab", "ab", "cd", None]) for _ in range(samples)]
        for k, answer in enumerate(answers):
            prompt = FEWSHOT + f"Q: Take the last letters of the words in \"w{i} v{i}\".\nA:"
            traces.append({"example_id": f"train-{i}", "method": "cot", "answer": answer, "sample": k, "error": None,
                           "calls": [{"name": "generate", "prompt": prompt, "output": f"reasoning {i}.{k} ... {answer}",
                                      "usage": {"prompt_tokens": 120, "completion_tokens": 30}}],
                           "meta": {"teacher": "t"}})
        top = answers.count("ab")
        kept = top > samples / 2
        refs = [{"teacher": "t", "sample": k, "answer": "ab"} for k, a in enumerate(answers) if a == "ab"] if kept else []
        reason = f"top answer 'ab' {top}/{samples}" if kept else f"no majority: top answer 'ab' {top}/{samples} <= 0.5"
        verdicts.append({"example_id": f"train-{i}", "kept": kept, "reason": reason, "answer": "ab" if kept else None,
                         "filter": "self_consistency", "meta": {"kept": refs}})
        if kept:
            pairs.append({"id": f"train-{i}", "teacher": "t", "sample": refs[0]["sample"], "prompt": FEWSHOT + f"Q: w{i} v{i}\nA:",
                          "completion": " ab\n"})
    write_jsonl(out / "samples" / "t.jsonl", traces)
    write_jsonl(out / "curation" / "verdicts.jsonl", verdicts)
    write_jsonl(out / "distill" / "distilled" / "stage1-answer_only.jsonl", pairs)
    rows, right = [], {}
    for name, system, accuracy, tokens in (("system1", "system1", 0.3, 2), ("system2-t", "system2", 0.8, 40),
                                            ("distilled-stage1", "distilled", 0.6, 2)):
        records = []
        for i in range(test):
            correct = rng.random() < accuracy
            records.append({"id": f"test-{i}", "answer": "ab" if correct else "zz", "target": "ab", "correct": float(correct),
                            "completion_tokens": tokens, "prompt_tokens": 100, "calls": 1, "error": None, "output": f"out {i}"})
        right[system] = {r["id"] for r in records if r["correct"]}
        row = {"system": system, "method": "cot" if system == "system2" else "direct", "task": "last_letters",
               "metric": "exact_match", "score": len(right[system]) / test, "n": test, "tokens_per_example": float(tokens),
               "unparseable": 0, "metrics": {}, "prompt_tokens_per_example": 100.0, "examples_per_second": 10.0,
               "teacher": "t" if system == "system2" else None, "stage": "answer_only" if system == "distilled" else None,
               "model": "m"}
        write_jsonl(out / "eval" / f"{name}.jsonl", records)
        write_json(out / "eval" / f"{name}.json", row)
        rows.append(row)
    log = [{"step": s, "epoch": s / 10, "loss": 3.0 / s, "mean_token_accuracy": min(1.0, s / 10)} for s in range(1, 11)]
    (out / "student" / "distilled" / "stage1").mkdir(parents=True, exist_ok=True)
    (out / "student" / "distilled" / "stage1" / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    kept_inputs = sum(v["kept"] for v in verdicts)
    report = {
        "name": "synthetic", "task": "last_letters", "teachers": "t: cot on m", "student": "m", "rows": rows,
        "curation": [{"variant": "distilled", "filter": "self_consistency", "min_fraction": 0.5, "first_sample_only": False,
                      "inputs": train, "kept": kept_inputs,
                      "per_teacher": {"t": {"outputs": len(traces), "parseable": 0, "kept": 0}}}],
        "lm": {"calls": 0, "cached": 0}, "timings": {}, "machine": {},
    }
    report["expected"] = {
        "kept": kept_inputs, "dropped": train - kept_inputs,
        "fixed": len(right["distilled"] - right["system1"]), "broke": len(right["system1"] - right["distilled"]),
        "system2_right": len(right["system2"]),
    }
    return report
