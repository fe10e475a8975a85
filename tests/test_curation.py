"""Self-consistency keeps strict majorities only, with a reason for every input."""

from __future__ import annotations

from s2distill.curation import self_consistency
from s2distill.types import Trace


def traces(*answers):
    return [Trace("x", "pal", a, sample=k) for k, a in enumerate(answers)]


def verdict(*answers, **kwargs):
    [v] = self_consistency({"x": traces(*answers)}, **kwargs)
    return v


def test_majority_is_kept_with_its_answer_and_share():
    v = verdict("ab", "ab", "ab", "cd")
    assert v.kept and v.answer == "ab" and v.reason == "top answer 'ab' 3/4"


def test_input_without_a_majority_is_dropped():
    v = verdict("ab", "ab", "cd", "ef")
    assert not v.kept and v.answer is None and v.reason.startswith("no majority: top answer 'ab' 2/4")


def test_ties_are_dropped():
    v = verdict("ab", "ab", "cd", "cd", "ef")
    assert not v.kept and v.reason.startswith("tie")


def test_unparseable_samples_count_but_do_not_vote():
    assert not verdict("ab", "ab", None, None).kept
    assert verdict("ab", "ab", "ab", None).kept
    v = verdict(None, None, None)
    assert not v.kept and v.reason == "no parseable answer in 3 samples"


def test_threshold_and_normalisation():
    assert verdict("AB", "ab ", "cd", normalize=lambda s: s.strip().lower()).kept
    assert not verdict("ab", "ab", "ab", "cd", min_fraction=0.75).kept
    assert verdict("ab", "ab", "cd", min_fraction=0.6).kept
