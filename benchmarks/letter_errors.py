"""Where a distilled last-letters student goes wrong: per word, by how many tokens the word is, on
names it trained on and on names it never saw.

Run: python benchmarks/letter_errors.py runs/quickstart [--n 200]

System 2 (PAL) never spells: its program reads `word[-1]` in Python. The distilled student must
know how each word ends from its tokens. This script asks what that costs. It scores the run's
distilled student greedily, through its saved prompt (`load_student`), on two sets of 2-word
inputs:

- `unseen`: the run's test split (names from the half of the name list it never trained on),
  the first `--n` of it at the recipe's seed;
- `seen`: new pairs of the names in the inputs it trained on (curation kept them), so each name is
  one it learned, the pairing new.

For each word position it prints the share of right letters among words that are one token of the
student's tokenizer in the question, and among words of two or more tokens (a word after the
opening quote has no leading space, so Gemma more often splits it). The labels are the task's
rule, read here for evaluation only.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from s2distill.config.recipe import apply_override, validate_recipe  # noqa: E402
from s2distill.hardware import describe, resolve_dtype  # noqa: E402
from s2distill.student.predict import load_student  # noqa: E402
from s2distill.artifacts import read_jsonl  # noqa: E402
from s2distill.tasks import build_task  # noqa: E402
from s2distill.types import Example  # noqa: E402


def trained_inputs(run: Path) -> tuple[list[str], set[tuple[str, ...]]]:
    """The words of the inputs curation kept (what the student was trained on), in input order, and
    every training input's words as a tuple (the pairs a new pairing must avoid)."""
    kept = {row["example_id"] for row in read_jsonl(run / "curation" / "verdicts.jsonl") if row["kept"]}
    words: dict[str, None] = {}
    pairs = set()
    for row in read_jsonl(run / "inputs" / "train.jsonl"):
        pairs.add(tuple(row["inputs"]["words"]))
        if row["id"] in kept:
            words.update(dict.fromkeys(row["inputs"]["words"]))
    return list(words), pairs


def seen_pairs(words: list[str], trained: set[tuple[str, ...]], n: int, seed: int) -> list[Example]:
    """`n` new 2-word inputs from trained names, none of them a trained pair."""
    rng = random.Random(seed)
    out: list[Example] = []
    attempts = 100 * n if len(words) >= 2 else 0
    while len(out) < n and attempts:
        attempts -= 1
        pair = tuple(rng.sample(words, 2))
        if pair not in trained:
            out.append(Example(f"seen-{len(out)}", {"words": list(pair)}))
    if len(out) < n:
        sys.exit(f"only {len(out)} new pairs of the {len(words)} trained names: ask for fewer (--n)")
    return out


def token_counts(tokenizer, question: str, words: list[str]) -> list[int]:
    """How many of the question's tokens each word (in order, from the first quote) overlaps."""
    encoded = tokenizer(question, return_offsets_mapping=True, add_special_tokens=False)
    counts, start = [], question.index('"') + 1
    for word in words:
        first = question.index(word, start)
        last = first + len(word)
        start = last
        counts.append(sum(1 for a, b in encoded["offset_mapping"] if a < last and b > first))
    return counts


def tally(task, tokenizer, examples: list[Example], answers: list[str | None]) -> tuple[int, Counter, Counter]:
    """Exact matches, and right letters / words per (position, '1 token' | '2+ tokens')."""
    exact, right, total = 0, Counter(), Counter()
    for example, answer in zip(examples, answers, strict=True):
        words, answer = example.inputs["words"], answer or ""
        exact += answer == "".join(w[-1] for w in words).lower()
        for position, (word, pieces) in enumerate(zip(words, token_counts(tokenizer, task.question(example), words))):
            key = (position + 1, "1 token" if pieces == 1 else "2+ tokens")
            total[key] += 1
            right[key] += len(answer) > position and answer[position] == word[-1].lower()
    return exact, right, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished last-letters run folder (2-word inputs)")
    parser.add_argument("--n", type=int, default=200, help="inputs per set")
    parser.add_argument("--seed", type=int, default=1, help="seed of the seen-name pairs")
    args = parser.parse_args()

    data = yaml.safe_load((args.run / "recipe.yaml").read_text())
    apply_override(data, f"task.test_size={args.n}")
    recipe = validate_recipe(data, source=str(args.run / "recipe.yaml"))
    if recipe.task.name != "last_letters" or recipe.task.words != 2:
        sys.exit(f"{args.run} is a {recipe.task.name} run; this script reads 2-word last-letters runs")
    task = build_task(recipe.task, data_root=recipe.data_root)

    from transformers import AutoTokenizer

    student = load_student(args.run)
    tokenizer = AutoTokenizer.from_pretrained(str(student.weights))
    words, trained = trained_inputs(args.run)
    sets = {"unseen": [item.example for item in task.labeled("test")],
            "seen": seen_pairs(words, trained, args.n, args.seed)}

    print(f"{describe(resolve_dtype(getattr(student.lm_config, 'dtype', 'auto')))}; "
          f"{len(words)} trained names; student {student.weights}")
    print("| names | exact | word 1, 1 token | word 1, 2+ tokens | word 2, 1 token | word 2, 2+ tokens |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, examples in sets.items():
        started = time.perf_counter()
        answers = [r["answer"] for r in student.predict([e.inputs for e in examples], workers=recipe.workers)]
        exact, right, total = tally(task, tokenizer, examples, answers)
        cells = [f"{right[k] / total[k]:.1%} ({right[k]}/{total[k]})" if total[k] else "—"
                 for k in [(1, "1 token"), (1, "2+ tokens"), (2, "1 token"), (2, "2+ tokens")]]
        print(f"| {name} | {exact / len(examples):.1%} | " + " | ".join(cells) + f" |  ({time.perf_counter() - started:.0f} s)")
    student.close()


if __name__ == "__main__":
    main()
