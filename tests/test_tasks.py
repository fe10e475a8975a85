"""Tasks: generated inputs with disjoint pools, real data checked, labels kept apart."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from s2distill.tasks.coin_flip import CoinFlip, CoinFlipConfig
from s2distill.tasks.data import data_file
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig
from s2distill.types import Example


def words(items):
    return {w for item in items for w in item.example.inputs["words"]}


def test_last_letters_train_and_test_use_disjoint_words_and_correct_targets():
    task = LastLetters(LastLettersConfig(train_size=300, test_size=100))
    train, test = task.labeled("train"), task.labeled("test")
    assert not words(train) & words(test)
    for item in train[:20] + test[:20]:
        assert item.target == "".join(w[-1] for w in item.example.inputs["words"]).lower()
    assert task.labeled("train") == train  # the seed makes it reproducible


def test_unlabeled_examples_carry_no_target():
    task = LastLetters(LastLettersConfig(train_size=5))
    assert {f.name for f in dataclasses.fields(Example)} == {"id", "inputs"}
    for example in task.unlabeled("train"):
        assert set(example.inputs) == {"words"}


def test_rar_test_sets_load_and_stay_out_of_the_training_pool():
    task = LastLetters(LastLettersConfig(test_source="rar", test_size=219, train_size=500))
    test = task.labeled("test")
    assert len(test) == 219 and test[0].target == "no"  # "Shannon Alejandro"
    assert not words(task.labeled("train")) & words(test)
    coin = CoinFlip(CoinFlipConfig(test_size=1333))
    rows = coin.labeled("test")
    assert len(rows) == 1333 and {r.target for r in rows} == {"yes", "no"}
    for item in rows[:50]:
        flips = item.example.inputs["flips"]
        assert item.target == ("yes" if sum(f for _, f in flips) % 2 == 0 else "no")


@pytest.mark.parametrize(
    ("text", "expected"),
    [(" rb\n", "rb"), ('The answer is "ab".', "ab"), ("  NK.", "nk"), ("", None), ("!!", None), ("ab cd", "ab")],
)
def test_last_letters_answer_parsing(text, expected):
    assert LastLetters().parse_answer(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("yes", "yes"), ("So the answer is no.", "no"), ("maybe", None)])
def test_coin_flip_answer_parsing(text, expected):
    assert CoinFlip().parse_answer(text) == expected


def test_a_modified_data_file_is_refused(tmp_path):
    from s2distill.paths import data_dir

    real = data_dir()
    fake_root = tmp_path / "data"
    (fake_root / "rar").mkdir(parents=True)
    shutil.copy(real / "SHA256SUMS", fake_root / "SHA256SUMS")
    (fake_root / "SOURCES.md").write_text("copy")
    (fake_root / "rar" / "coin_val_raw.json").write_text("[]")
    with pytest.raises(ValueError, match="does not match SHA256SUMS"):
        data_file("rar/coin_val_raw.json", fake_root)
    with pytest.raises(FileNotFoundError, match="missing"):
        data_file("rar/csqa_gpt-4.json", fake_root)
