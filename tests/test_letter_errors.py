"""benchmarks/letter_errors.py: the word spans it counts tokens over, and the tallies it prints."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

from s2distill.tasks.last_letters import LastLetters, LastLettersConfig
from s2distill.types import Example

_spec = importlib.util.spec_from_file_location("letter_errors", Path(__file__).parents[1] / "benchmarks" / "letter_errors.py")
letter_errors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(letter_errors)


class SyllableTokenizer:
    """Splits text into runs of up to 3 letters, or single other characters, with offsets."""

    def __call__(self, text, return_offsets_mapping=False, add_special_tokens=True):
        return {"offset_mapping": [m.span() for m in re.finditer(r"[A-Za-z]{1,3}|[^A-Za-z]", text)]}


def test_token_counts_follow_each_word_in_order():
    # "Take the last letters of the words in "Al Bob" ..." : the words in the task's own question
    task = LastLetters(LastLettersConfig(words=2))
    question = task.question(Example("x", {"words": ["Al", "Barbara"]}))
    assert letter_errors.token_counts(SyllableTokenizer(), question, ["Al", "Barbara"]) == [1, 3]
    # a word that also occurs earlier in the sentence is found after the opening quote
    question = task.question(Example("x", {"words": ["the", "Take"]}))
    assert letter_errors.token_counts(SyllableTokenizer(), question, ["the", "Take"]) == [1, 2]


def test_tally_counts_letters_per_position_and_token_bucket():
    task = LastLetters(LastLettersConfig(words=2))
    examples = [Example("a", {"words": ["Al", "Barbara"]}), Example("b", {"words": ["Bob", "Al"]})]
    exact, right, total = letter_errors.tally(task, SyllableTokenizer(), examples, ["la", None])
    assert exact == 1
    assert total == Counter({(1, "1 token"): 2, (2, "2+ tokens"): 1, (2, "1 token"): 1})
    assert right == Counter({(1, "1 token"): 1, (2, "2+ tokens"): 1})  # a Counter: zero counts equal missing


def test_seen_pairs_are_new_pairings_of_trained_words():
    words = ["Al", "Bob", "Cy", "Di"]
    trained = {("Al", "Bob"), ("Cy", "Di")}
    pairs = letter_errors.seen_pairs(words, trained, 20, seed=3)
    assert len(pairs) == 20
    assert all(tuple(p.inputs["words"]) not in trained and set(p.inputs["words"]) <= set(words) for p in pairs)


def test_trained_inputs_are_the_kept_inputs_words_and_every_training_pair(tmp_path):
    (tmp_path / "curation").mkdir()
    (tmp_path / "inputs").mkdir()
    (tmp_path / "curation" / "verdicts.jsonl").write_text(
        '{"example_id": "a", "kept": true}\n{"example_id": "b", "kept": false}\n{"example_id": "c", "kept": true}\n')
    (tmp_path / "inputs" / "train.jsonl").write_text(
        '{"id": "a", "inputs": {"words": ["Al", "Bob"]}}\n{"id": "b", "inputs": {"words": ["Cy", "Di"]}}\n'
        '{"id": "c", "inputs": {"words": ["Bob", "Ed"]}}\n')
    words, pairs = letter_errors.trained_inputs(tmp_path)
    assert words == ["Al", "Bob", "Ed"]  # dropped inputs' words are not trained names
    assert pairs == {("Al", "Bob"), ("Cy", "Di"), ("Bob", "Ed")}
