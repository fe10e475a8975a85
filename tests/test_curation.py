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


def test_plurality_keeps_the_most_frequent_answer_whatever_its_share_and_still_drops_ties():
    v = verdict("ab", "ab", "cd", "ef", vote="plurality")
    assert v.kept and v.answer == "ab" and v.reason == "plurality 'ab' 2/4" and v.meta["vote"] == "plurality"
    assert [k.sample for k in v.kept_outputs] == [0, 1]
    assert not verdict("ab", "ab", "cd", "cd", "ef", vote="plurality").kept
    assert not verdict("ab", "ab", "cd", "ef").kept  # the same samples under the default majority vote


def test_unparseable_samples_count_but_do_not_vote():
    assert not verdict("ab", "ab", None, None).kept
    assert verdict("ab", "ab", "ab", None).kept
    v = verdict(None, None, None)
    assert not v.kept and v.reason == "no parseable answer in 3 samples"


def test_threshold_and_normalisation():
    assert verdict("AB", "ab ", "cd", normalize=lambda s: s.strip().lower()).kept
    assert not verdict("ab", "ab", "ab", "cd", min_fraction=0.75).kept
    assert verdict("ab", "ab", "cd", min_fraction=0.6).kept


# -- perturbation agreement ------------------------------------------------------------------------

def test_order_swap_keeps_agreement_after_mapping_back():
    from s2distill.curation import perturbation_agreement
    from s2distill.tasks.judging import map_back_swapped_verdict

    original = {"same": "A", "biased": "A", "tie": "C", "broken": None, "lost": "B"}
    swapped = {"same": "B", "biased": "A", "tie": "C", "broken": "A", "lost": None}
    verdicts = {v.example_id: v for v in perturbation_agreement(original, swapped, map_back=map_back_swapped_verdict)}
    assert verdicts["same"].kept and verdicts["same"].answer == "A"  # B on the swapped pair means A
    assert not verdicts["biased"].kept and "disagreed: 'A' vs 'B'" in verdicts["biased"].reason  # always-first bias
    assert verdicts["tie"].kept and verdicts["tie"].answer == "C"
    assert not verdicts["broken"].kept and "original" in verdicts["broken"].reason
    assert not verdicts["lost"].kept and "perturbed" in verdicts["lost"].reason


def test_perturbation_with_a_custom_map_back_for_shuffled_options():
    from s2distill.curation import perturbation_agreement

    shuffle = {"A": "C", "B": "A", "C": "B"}  # original option -> its letter after shuffling
    back = {v: k for k, v in shuffle.items()}
    verdicts = perturbation_agreement({"q": "B"}, {"q": "A"}, map_back=back.get, name="option_shuffle")
    assert verdicts[0].kept and verdicts[0].reason == "agreed on 'B' after option_shuffle"


# -- dual-criteria rejection sampling -----------------------------------------------------------

def teacher_output(teacher, answer, confidence, rationale="r", sample=0):
    return Trace("x", "twt", answer, sample=sample, teacher=teacher, confidence=confidence, rationale=rationale)


VECTORS = {"north": [1.0, 0.0], "north-ish": [0.9, 0.1], "east": [0.0, 1.0], "north-east": [0.7, 0.7]}


def fake_embed(texts):
    import numpy as np

    return np.array([VECTORS[t] for t in texts])


def test_quality_keeps_a_confidence_exactly_at_the_threshold_and_drops_unparseable():
    from s2distill.curation import dual_criteria

    outputs = {"x": [teacher_output("t1", "ab", 0.95), teacher_output("t2", "ab", 0.9499),
                     teacher_output("t3", None, 0.99), teacher_output("t4", "ab", None)]}
    [v] = dual_criteria(outputs, embed=fake_embed)
    assert v.kept and [k.teacher for k in v.kept_outputs] == ["t1"]
    assert v.reason == "1 of 4 outputs with confidence >= 0.95"
    [none] = dual_criteria({"y": [teacher_output("t1", "ab", 0.5)]}, embed=fake_embed)
    assert not none.kept and none.reason.startswith("no output with confidence >= 0.95")


def test_diversity_keeps_the_min_similarity_pair_of_three_or_more():
    import numpy as np

    from s2distill.curation import dual_criteria, most_diverse_pair

    outputs = {"x": [teacher_output("t1", "ab", 0.97, "north"), teacher_output("t2", "ab", 0.99, "north-ish"),
                     teacher_output("t3", "ab", 0.96, "east"), teacher_output("t4", "ab", 0.98, "north-east")]}
    [v] = dual_criteria(outputs, embed=fake_embed)
    assert [k.teacher for k in v.kept_outputs] == ["t1", "t3"]  # north vs east: cosine 0
    assert "cosine 0.00" in v.reason
    two = {"x": outputs["x"][:2]}
    [kept_both] = dual_criteria(two, embed=lambda texts: (_ for _ in ()).throw(AssertionError("not needed")))
    assert len(kept_both.kept_outputs) == 2
    assert most_diverse_pair(np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]))[:2] == (0, 1)  # ties: first pair


def test_perturbation_consistency_votes_on_each_side_and_maps_back_per_input():
    from s2distill.curation import perturbation_consistency
    from s2distill.tasks.judging import map_back_swapped_verdict

    def swapped(_id, answer):
        return map_back_swapped_verdict(answer)

    def side(answers):
        return [Trace("q", "bsm", a, sample=k, meta={"teacher": "bsm"}) for k, a in enumerate(answers)]

    original = {"q": side(["A", "A", "B"])}
    # Swapped: the same preference reads "B"; two of three samples say so.
    [kept] = perturbation_consistency(original, {"q": side(["B", "B", "A"])},
                                      map_back=swapped)
    assert kept.kept and kept.answer == "A" and [k.sample for k in kept.kept_outputs] == [0, 1]
    [biased] = perturbation_consistency(original, {"q": side(["A", "A", "A"])}, map_back=swapped)  # position bias: always "A"
    assert not biased.kept and "disagreed" in biased.reason
    [tied] = perturbation_consistency({"q": side(["A", "B"])}, {"q": side(["B", "B"])}, map_back=swapped)
    assert not tied.kept and tied.reason.startswith("original input: tie")
    # A per-input map (a shuffle): original option C is shown as A on the copy of input q.
    [shuffled] = perturbation_consistency({"q": side(["C", "C"])}, {"q": side(["A", "A"])},
                                          map_back=lambda example_id, a: {"A": "C"}.get(a))
    assert shuffled.kept
