"""The controls a distilled student must beat (issue 26): gold labels (the ceiling), the student's own
samples unfiltered (SSD) and random targets at matched count (the floor), each one `baselines:` entry.

End to end on the smoke recipe: the fake teacher, the tiny student trained for real, and, for the
untrained student's System 1, a scripted fake (the untrained tiny model's samples never parse, so
SSD would have nothing to train on)."""

from __future__ import annotations

import inspect
from collections import Counter

import pytest
import yaml

from s2distill.artifacts import read_jsonl
from s2distill.config.recipe import RecipeError, validate_recipe
from s2distill.distill.controls import derangement
from s2distill.distill.variants import SSD_SOURCE, SSD_TEMPERATURE, SYSTEM1_SOURCE, plan_variants, sampled_once
from s2distill.lm import FakeLM
from s2distill.models import build_from_config
from s2distill.pipeline import Pipeline
from s2distill.tasks.last_letters import LastLetters

CONTROLS = ["gold", "self_samples", "random_targets"]
QUESTION = r'Q: Take the last letters of the words in "\w*(\w) \w*(\w)" and concatenate them\.\nA:$'
# The untrained student's System 1: blank for inputs whose first word starts with A-H (unparseable:
# no target), else the right answer in sample 0 and a wrong one in sample 1.
SYSTEM1_RULES = [{"pattern": r'Q: Take the last letters of the words in "[A-H]\w* \w+" and concatenate them\.\nA:$',
                  "responses": ["\n"]},
                 {"pattern": QUESTION, "responses": [" \\1\\2\n", " zz\n"]}]


@pytest.fixture
def smoke_data(recipes_dir):
    data = yaml.safe_load((recipes_dir / "smoke.yaml").read_text())
    data["evaluate"] = {"systems": ["system1", "distilled"]}  # System 2's row is not what this is about
    return data


class Student:
    """An lm_factory: the untrained student (no adapter) is a scripted fake that records the requests
    it gets; every other model (the fake teacher, each trained student) is built as configured."""

    def __init__(self):
        self.fake = FakeLM(SYSTEM1_RULES, name="system1-fake")

    def __call__(self, config, *, adapter=None):
        if config.backend == "tiny" and adapter is None:
            return self.fake
        return build_from_config(config, adapter=adapter)


def first_pairs(path) -> dict[str, dict]:
    """Each input's first pair in a set."""
    pairs: dict[str, dict] = {}
    for pair in read_jsonl(path):
        pairs.setdefault(pair["id"], pair)
    return pairs


def test_the_three_controls_train_beside_the_distilled_student_and_reuse_its_curation(smoke_data, tmp_path,
                                                                                     monkeypatch):
    labels_read: list[set[str]] = []  # the stack of each direct read of the train labels
    original = LastLetters.labeled

    def labeled(self, split):
        stack = {frame.function for frame in inspect.stack()[1:40]}
        if split == "train" and "unlabeled" not in stack:  # unlabeled() drops the targets
            labels_read.append(stack)
        return original(self, split)

    monkeypatch.setattr(LastLetters, "labeled", labeled)
    student = Student()
    Pipeline(validate_recipe(smoke_data), tmp_path, progress=False, lm_factory=student).run()
    # the distilled run's own stages read no train label (the report's data hashes and the curation
    # audit read them after curation, for what they are)
    assert not any("control_set_stage" in stack for stack in labels_read)

    # One recipe line adds the controls: the samples, the curation and the distilled student are kept.
    recipe = validate_recipe({**smoke_data, "baselines": CONTROLS})
    report = Pipeline(recipe, tmp_path, progress=False, lm_factory=student).run()
    ran = {r["name"] for r in report["stages"]["ran"]}
    assert not any(name.startswith(("samples:teacher", "samples:pal", "curation:distilled", "train:distilled"))
                   for name in ran), ran
    assert {"curation:self_samples", "distill:gold/stage1-answer_only", "train:gold/stage1",
            "distill:random_targets/stage1-answer_only", "train:random_targets/stage1"} <= ran
    assert "curation:gold" not in ran and "curation:random_targets" not in ran  # they read distilled's verdicts

    # Gold's set stage read the labels; sampling and curation never did.
    assert any("control_set_stage" in stack for stack in labels_read)
    assert not any(stack & {"curate_stage", "samples_stage", "inputs_stage"} for stack in labels_read)

    # Rows beside the distilled one, each with its role.
    rows = {r["system"]: r for r in report["rows"]}
    assert [r["system"] for r in report["rows"]] == ["system1", "distilled", *CONTROLS]
    assert rows["gold"]["control"] == "gold labels (ceiling)" and rows["distilled"]["control"] is None
    assert rows["random_targets"]["control"] == "random targets (floor)"
    assert rows["self_samples"]["control"] == "own samples, unfiltered (SSD)"
    assert all(rows[name]["score"] is not None and rows[name]["train_pairs"] > 0 for name in CONTROLS)
    markdown = (tmp_path / "report.md").read_text()
    for line in ("| gold — gold labels (ceiling) | answer_only |", "| random_targets — random targets (floor) |",
                 "| self_samples — own samples, unfiltered (SSD) |"):
        assert line in markdown
    assert "gold — gold labels (ceiling)" in (tmp_path / "report.html").read_text()

    # gold: exactly the inputs distilled's curation kept, each with its train label.
    verdicts = read_jsonl(tmp_path / "curation" / "verdicts.jsonl")
    kept = [v["example_id"] for v in verdicts if v["kept"]]
    targets = {item.example.id: item.target for item in original(LastLetters(recipe.task), "train")}
    gold = read_jsonl(tmp_path / "distill" / "gold" / "stage1-answer_only.jsonl")
    assert [p["id"] for p in gold] == kept and all(p["completion"] == f" {targets[p['id']]}\n" for p in gold)
    distilled = first_pairs(tmp_path / "distill" / "distilled" / "stage1-answer_only.jsonl")
    assert all(p["prompt"] == distilled[p["id"]]["prompt"] for p in gold)

    # random_targets: as many pairs as kept inputs, the same answers, none on its own input.
    shuffled = read_jsonl(tmp_path / "distill" / "random_targets" / "stage1-answer_only.jsonl")
    assert [p["id"] for p in shuffled] == kept and len(kept) > 2
    assert Counter(p["completion"] for p in shuffled) == Counter(distilled[i]["completion"] for i in kept)
    assert len({distilled[i]["completion"] for i in kept}) >= 2
    assert all(p["completion"] != distilled[p["id"]]["completion"] and p["from"] != p["id"] for p in shuffled)
    assert all(p["prompt"] == distilled[p["id"]]["prompt"] for p in shuffled)

    # self_samples: the student's own System 1, one sample per input at the teacher's temperature, no
    # filter (only the unparseable blanks have no target).
    samples = read_jsonl(tmp_path / "samples" / "system1.jsonl")
    assert len(samples) == 24 and {s["sample"] for s in samples} == {0}
    assert {r.temperature for r in student.fake.requests if "Take the last letters" in (r.prompt or "")} >= {0.7}
    curation = {c["variant"]: c for c in report["curation"]}
    assert set(curation) == {"distilled", "self_samples"}  # the other two have none of their own
    assert curation["self_samples"]["filter"] == "none" and curation["self_samples"]["first_sample_only"]
    parseable = [s for s in samples if s["answer"] is not None]
    ssd = read_jsonl(tmp_path / "distill" / "self_samples" / "stage1-answer_only.jsonl")
    assert 0 < len(ssd) == len(parseable) < 24
    assert [(p["id"], p["completion"]) for p in ssd] == [(s["example_id"], f" {s['answer']}\n") for s in parseable]

    # Editing a kept input's train label redoes gold's set and training (and so its evaluation), and,
    # besides them, only the curation audit (which scores curation against the labels).
    edited = kept[0]

    def relabeled(self, split):
        items = labeled(self, split)
        if split != "train":
            return items
        return [type(item)(item.example, "qq") if item.example.id == edited else item for item in items]

    monkeypatch.setattr(LastLetters, "labeled", relabeled)
    again = Pipeline(recipe, tmp_path, progress=False, lm_factory=student).run()
    redone = {r["name"] for r in again["stages"]["ran"] if not r["name"].startswith("audit:")}
    assert {"distill:gold/stage1-answer_only", "train:gold/stage1"} <= redone <= {
        "distill:gold/stage1-answer_only", "train:gold/stage1", "eval:gold-stage1"}, redone
    assert first_pairs(tmp_path / "distill" / "gold" / "stage1-answer_only.jsonl")[edited]["completion"] == " qq\n"


def test_gold_is_refused_for_a_task_without_labels_before_the_folder_is_touched(tmp_path):
    data = tmp_path / "inputs.jsonl"
    data.write_text("".join(f'{{"q": "question {i}"}}\n' for i in range(10)))
    recipe = validate_recipe({"task": {"name": "custom", "path": str(data), "question": "q"},
                              "teacher": {"model": {"backend": "fake"}, "method": {"name": "cot"}},
                              "baselines": ["gold"]})
    out = tmp_path / "run"
    with pytest.raises(RecipeError, match="baselines: gold trains on the train labels, and task custom has none"):
        Pipeline(recipe, out, progress=False)
    assert not out.exists() or not any(out.iterdir())
    Pipeline(recipe.model_copy(update={"baselines": ["self_samples", "random_targets"]}), out, progress=False)


def test_the_controls_as_planned():
    recipe = validate_recipe({"task": {"name": "last_letters"}, "baselines": CONTROLS,
                              "evaluate": {"systems": ["system1"]}, "distill": {"stages": ["full_reasoning"]}})
    variants = {v.name: v for v in plan_variants(recipe)}
    assert set(variants) == set(CONTROLS)  # distilled is not evaluated, yet its curation is what gold trains on
    for name in ("gold", "random_targets"):
        assert variants[name].kept_by.name == "distilled" and variants[name].curated.name == "distilled"
        assert variants[name].targets == name and variants[name].stages == ("answer_only",)
    ssd = variants["self_samples"]
    assert ssd.sources == (SYSTEM1_SOURCE,) and ssd.filter == "none" and ssd.first_sample_only
    assert sampled_once(list(variants.values()), SYSTEM1_SOURCE)  # one sample per input, not the teacher's 8
    # With distill_system1 both read one System 1 samples artifact, sampled N times.
    both = plan_variants(recipe.model_copy(update={"baselines": ["distill_system1", "self_samples"]}))
    assert {v.sources for v in both} == {(SYSTEM1_SOURCE,)} and not sampled_once(both, SYSTEM1_SOURCE)
    # A greedy first teacher: SSD samples at a training temperature of its own, once per input.
    greedy = validate_recipe({"task": {"name": "last_letters"}, "baselines": ["self_samples"],
                              "teacher": {"temperature": 0.0, "samples": 1}})
    (ssd,) = [v for v in plan_variants(greedy) if v.name == "self_samples"]
    assert ssd.sources == (SSD_SOURCE,) and SSD_TEMPERATURE == 0.7
    with pytest.raises(RecipeError, match="reserved"):
        validate_recipe({"task": {"name": "last_letters"}, "teacher": {"name": SSD_SOURCE}})


def test_the_ssd_source_of_a_greedy_teacher_samples_once_at_the_training_temperature():
    from rich.console import Console

    from s2distill.models import Models
    from s2distill.stages.context import RunContext

    recipe = validate_recipe({"task": {"name": "last_letters"}, "baselines": ["self_samples"],
                              "teacher": {"temperature": 0.0, "samples": 1, "seed": 3}})
    ctx = RunContext(recipe, LastLetters(recipe.task), [], None, Models(":memory:"), Console())
    source = ctx.source(SSD_SOURCE)
    assert (source.name, source.samples, source.temperature, source.seed) == (SSD_SOURCE, 1, SSD_TEMPERATURE, 3)
    assert source.model == recipe.student.model and source.method == recipe.student.method


@pytest.mark.parametrize("values", [list("abcdef"), list("aabbcc"), list("aaabbc"), list("aaaabc"), list("aaaaaa"),
                                    ["x", "y"], list("aaaaabbbbbcdefghij")])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_derangement_moves_every_position_and_gives_as_few_as_possible_their_own_value(values, seed):
    order = derangement(values, seed=seed)
    assert sorted(order) == list(range(len(values)))  # a permutation: the same multiset of values
    assert all(order[i] != i for i in range(len(values)))
    top, n = max(Counter(values).values()), len(values)
    same = sum(values[order[i]] == values[i] for i in range(n))
    assert same == (n if top == n else max(0, 2 * top - n))
    assert derangement(values, seed=seed) == order  # seeded


def test_derangement_depends_on_the_seed():
    values = [str(i) for i in range(20)]
    assert len({tuple(derangement(values, seed=s)) for s in range(5)}) > 1
    assert derangement(["a"], seed=0) == [0] and derangement([], seed=0) == []


# -- what each task trains gold on, and the controls' form --------------------------------------------

def test_gold_trains_each_task_on_an_answer_not_on_what_it_scores_with():
    """TriviaQA's label is every alias (JSON) and MBPP's the tests: gold learns the data set's correct
    answer and the reference solution, each scored right against its own label."""
    from s2distill.tasks.mbpp import MBPP
    from s2distill.tasks.triviaqa import TriviaQA

    for task in (TriviaQA(), MBPP(), LastLetters()):
        for item in task.labeled("train")[:3]:
            answer = task.gold_answer(item.example, item.target)
            assert not answer.lstrip().startswith(("[", "{")), (type(task).__name__, answer[:60])
            assert task.score(answer, item.target) == 1.0, (type(task).__name__, answer[:60])


def test_random_targets_are_told_apart_by_answer_not_by_wording():
    """Two kept inputs whose targets are worded differently but give one answer count as one value:
    the derangement never hands an input a target with its own answer when another answer exists."""
    from s2distill.distill.controls import random_target_pairs
    from s2distill.types import Call, Example, Trace, Usage, Verdict

    task = LastLetters()
    examples = [Example(f"x{i}", {"words": ["Ada", "Bob"]}) for i in range(4)]
    answers = ["ab", "ab", "cd", "cd"]
    worded = ["The answer is ab.", "So: ab", "The answer is cd.", "cd it is"]

    def kept(i):
        trace = Trace(f"x{i}", "cot", answers[i], [Call("p", worded[i], Usage(1, 1))], sample=0, teacher="t")
        verdict = Verdict(f"x{i}", True, "kept", answers[i], "none",
                          kept_outputs=({"teacher": "t", "sample": 0, "answer": answers[i]},))
        return verdict, [trace]

    for seed in range(10):
        pairs = random_target_pairs(task, examples, [kept(i) for i in range(4)], seed=seed, shots=0)
        assert len(pairs) == 4
        by_id = dict(zip([p["id"] for p in pairs], [p["from"] for p in pairs]))
        assert all(answers[int(i[1:])] != answers[int(source[1:])] for i, source in by_id.items())


def test_the_controls_end_on_label_only_where_the_recipe_does():
    from s2distill.distill.variants import variant_stages

    assert variant_stages("gold", ["label_only"]) == ("label_only",)
    assert variant_stages("random_targets", ("label_only",)) == ("label_only",)
    assert variant_stages("gold", ["full_reasoning", "compressed_reasoning", "answer_only"]) == ("answer_only",)
    assert variant_stages("self_samples", ["label_only"]) == ("answer_only",)
