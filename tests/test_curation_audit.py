"""The curation audit (issue 26): precision, coverage, rescued and poisoned of what curation kept,
per filter and teacher, the threshold curve, hand labels, and that curation never reads a label.

Scripted teachers whose right and wrong answers are known by the first letter of an input's first
word, and a scripted System 1, so every figure is asserted exactly. Most tests run the stages up to
the audit (no training: the student is a fake model); one runs the whole smoke recipe for the reports.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from s2distill.artifacts import read_jsonl
from s2distill.config.recipe import RecipeError, load_recipe, validate_recipe
from s2distill.curation.audit import Judge, audit_verdicts, wilson
from s2distill.curation.filters import FilterInputs, SelfConsistencyFilter
from s2distill.curation.threshold_curve import threshold_curves
from s2distill.errors import DataError
from s2distill.pipeline import Pipeline, _sources
from s2distill.report.audit import audit_lines
from s2distill.report.browser import dump_dom, find_chromium
from s2distill.stages.audit import audit_stages
from s2distill.stages.curate import curate_stage
from s2distill.stages.sampling import inputs_stage, samples_stage
from s2distill.tasks.last_letters import LastLetters
from s2distill.types import OutputRef, Trace, Verdict

ROOT = Path(__file__).resolve().parents[1]
QUESTION = r'words in "([{}]\w*)(\w) (\w*)(\w)" and concatenate them\.'
RIGHT, WRONG, WRONG2, WRONG3 = (" The answer is \\2\\4.", " The answer is \\2\\4x.", " The answer is \\2\\4y.",
                                " The answer is \\2\\4w.")
# One teacher, 4 samples, its answers known by the first letter of the input's first word:
GROUPS = {
    "A-F": [RIGHT, RIGHT, RIGHT, WRONG],  # 3/4 right: kept, right
    "G-M": [WRONG, WRONG, WRONG, RIGHT],  # 3/4 wrong: kept, poisoned
    "N-S": [RIGHT, RIGHT, WRONG, WRONG2],  # 2/4 right: dropped at min_fraction 0.5, kept (right) below it
    "T-Z": [RIGHT, WRONG, WRONG2, WRONG3],  # four answers 1/4 each: a tie, dropped at every threshold
}
# System 1 (the student, greedy) is right on first words starting A-C and G-J only.
SYSTEM1 = [{"pattern": QUESTION.format("A-CG-J"), "responses": [" \\2\\4\n"]},
           {"pattern": QUESTION.format("D-FK-Z"), "responses": [" zz\n"]}]
TRAIN = 40


def sc_recipe(**extra) -> dict:
    rules = [{"pattern": QUESTION.format(group), "responses": responses} for group, responses in GROUPS.items()]
    return {"task": {"name": "last_letters", "train_size": TRAIN, "test_size": 2},
            "teacher": {"name": "good", "model": {"backend": "fake", "rules": rules},
                        "method": {"name": "cot", "shots": 0}, "samples": 4},
            "student": {"model": {"backend": "fake", "rules": SYSTEM1}, "method": {"name": "direct", "shots": 0}},
            "curation": {"filter": "self_consistency", "min_fraction": 0.5}, **extra}


def group_of(words: list[str]) -> str:
    first = words[0][0].upper()
    return next(g for g in GROUPS if g[0] <= first <= g[-1])


def run_to_audit(recipe: dict | object, out: Path) -> tuple[dict, Pipeline]:
    """Inputs, samples, curation and the audit, as the pipeline runs them (no training, no evaluation)."""
    pipeline = Pipeline(recipe if not isinstance(recipe, dict) else validate_recipe(recipe), out, progress=False)
    ctx = pipeline.ctx
    with ctx.models:
        inputs = inputs_stage(ctx)
        samples = {(n, perturbed): samples_stage(ctx, n, inputs, perturbed=perturbed)
                   for n, perturbed in _sources(pipeline.variants)}
        curated = [(v, curate_stage(ctx, v, inputs, samples)) for v in pipeline.variants]
        audit = audit_stages(ctx, curated, inputs, samples)
    return audit, pipeline


def groups(out: Path) -> dict[str, list[str]]:
    """Input ids by group, and by whether System 1 is right on them ("s1")."""
    by: dict[str, list[str]] = {g: [] for g in GROUPS} | {"s1": []}
    for row in read_jsonl(out / "inputs" / "train.jsonl"):
        words = row["inputs"]["words"]
        by[group_of(words)].append(row["id"])
        if words[0][0].upper() in "ABCGHIJ":
            by["s1"].append(row["id"])
    return by


# -- the pure computation -----------------------------------------------------------------------

def test_wilson_interval_matches_its_formula():
    assert wilson(0, 0) is None
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4901624, abs=1e-6) and high == pytest.approx(0.9433178, abs=1e-6)
    assert wilson(10, 10)[1] == 1.0 and wilson(0, 10)[0] == 0.0


def test_audit_of_verdicts_counts_rescued_poisoned_and_each_teacher():
    verdicts = [
        Verdict("a", True, "", "x", kept_outputs=(OutputRef("t1", 0, "x"), OutputRef("t2", 0, "x"))),  # right, rescued
        Verdict("b", True, "", "y", kept_outputs=(OutputRef("t1", 0, "y"), OutputRef("t2", 1, "z"))),  # one wrong: poisoned
        Verdict("c", True, "", "w", kept_outputs=(OutputRef("t2", 0, "w"),)),  # right, System 1 right too
        Verdict("d", False, "tie"),  # dropped
        Verdict("e", True, "", "q", kept_outputs=(OutputRef("t1", 0, "q"),)),  # not labelled: coverage only
    ]
    judge = Judge({"a": "x", "b": "y", "c": "w", "d": "v"}, lambda answer, target: float(answer == target))
    result = audit_verdicts(verdicts, judge, {"a": "no", "b": "y", "c": "w", "d": "v"}, question=str.upper)
    assert (result["inputs"], result["kept"], result["coverage"]) == (5, 4, 0.8)
    assert (result["labelled"], result["kept_labelled"], result["right"]) == (4, 3, 2)
    assert result["precision"] == 2 / 3 and result["precision_ci"] == wilson(2, 3)
    assert (result["outputs"], result["outputs_right"]) == (5, 4)
    assert (result["rescued"], result["poisoned"]) == (1, 1)
    assert result["system1"] == {"right": 3, "n": 4, "accuracy": 0.75}
    assert result["per_teacher"] == {
        "t1": {"inputs": 2, "outputs": 2, "right": 2, "precision": 1.0, "precision_ci": wilson(2, 2)},
        "t2": {"inputs": 3, "outputs": 3, "right": 2, "precision": 2 / 3, "precision_ci": wilson(2, 3)}}
    assert result["examples"]["rescued"] == [{"id": "a", "question": "A", "kept": ["x"], "label": "x", "system1": "no",
                                             "reason": ""}]
    assert result["examples"]["poisoned"][0]["kept"] == ["y", "z"]


def test_the_curve_runs_the_filter_again_at_every_vote_share():
    traces = {f"i{n}": [Trace(f"i{n}", "cot", a, sample=k, teacher="t") for k, a in enumerate(answers)]
              for n, answers in enumerate([["a", "a", "a", "b"], ["b", "b", "c", "d"], ["a", "b", None, None]])}
    judge = Judge({"i0": "a", "i1": "c", "i2": "a"}, lambda answer, target: float(answer == target))
    [curve] = threshold_curves([SelfConsistencyFilter(min_fraction=0.25)], lambda: iter([(traces, None)]),
                               lambda _: FilterInputs(),
                               judge, {"i0": (True, (("t", 0), ("t", 1), ("t", 2))),
                                       "i1": (True, (("t", 0), ("t", 1))), "i2": (False, ())})
    points = {p["threshold"]: (p["kept"], p["right"]) for p in curve["points"]}
    assert points == {0.0: (2, 1), 0.25: (2, 1), 0.5: (1, 1), 0.75: (0, 0)}  # i2 ties at every threshold
    assert [p["chosen"] for p in curve["points"]] == [False, True, False, False] and curve["reproduced"]


# -- on a scripted teacher, through the stages --------------------------------------------------

def test_self_consistency_audit_on_a_scripted_teacher(tmp_path):
    audit, _ = run_to_audit(sc_recipe(), tmp_path)
    by = groups(tmp_path)
    af, gm, ns, tz = (len(by[g]) for g in GROUPS)
    assert min(af, gm, ns, tz) > 0 and af + gm + ns + tz == TRAIN
    assert audit["labels"] == {"source": "task", "file": None, "n": TRAIN}
    [entry] = audit["variants"]
    kept = af + gm
    assert (entry["variant"], entry["filter"], entry["inputs"], entry["kept"]) == ("distilled", "self_consistency", TRAIN, kept)
    assert entry["coverage"] == kept / TRAIN and entry["right"] == af
    assert entry["precision"] == af / kept and entry["precision_ci"] == wilson(af, kept)
    assert entry["poisoned"] == gm
    rescued = [i for i in by["A-F"] if i not in by["s1"]]  # D-F: System 1 wrong, the kept answer right
    assert entry["rescued"] == len(rescued) and [x["id"] for x in entry["examples"]["rescued"]] == rescued[:5]
    assert entry["system1"]["right"] == len(by["s1"])
    # outputs: 3 kept per kept input, all right (A-F) or all wrong (G-M)
    assert (entry["outputs"], entry["outputs_right"]) == (3 * kept, 3 * af)
    assert entry["per_teacher"] == {"good": {"inputs": kept, "outputs": 3 * kept, "right": 3 * af,
                                             "precision": af / kept, "precision_ci": wilson(3 * af, 3 * kept)}}
    poisoned = entry["examples"]["poisoned"][0]
    assert poisoned["id"] == by["G-M"][0] and poisoned["kept"][0] == poisoned["label"] + "x"
    # The curve: min_fraction at each share k/4; ties (T-Z) never kept; N-S kept (right) below one half.
    [curve] = entry["curves"]
    assert (curve["filter"], curve["setting"], curve["chosen"], curve["reproduced"]) == ("self_consistency", "min_fraction", 0.5, True)
    points = {p["threshold"]: (p["kept"], p["right"]) for p in curve["points"]}
    assert points == {0.0: (af + gm + ns, af + ns), 0.25: (af + gm + ns, af + ns), 0.5: (kept, af), 0.75: (0, 0)}
    [chosen] = [p for p in curve["points"] if p["chosen"]]
    assert {k: chosen[k] for k in ("kept", "coverage", "precision", "precision_ci", "output_precision")} == \
        {k: entry[k] for k in ("kept", "coverage", "precision", "precision_ci", "output_precision")}
    # System 1 asked once per labelled input, greedy
    assert len(read_jsonl(tmp_path / "audit" / "system1-train.jsonl")) == TRAIN


def test_plurality_is_marked_at_min_fraction_zero(tmp_path):
    audit, _ = run_to_audit(sc_recipe(curation={"filter": {"name": "self_consistency", "vote": "plurality"}}), tmp_path)
    [entry] = audit["variants"]
    [chosen] = [p for p in entry["curves"][0]["points"] if p["chosen"]]
    assert chosen["threshold"] == 0.0 and chosen["kept"] == entry["kept"] and entry["curves"][0]["reproduced"]


def twt_teacher(name: str, rules: list[tuple[str, str, float]]) -> dict:
    return {"name": name, "samples": 1, "method": {"name": "twt", "prompt_format": "fewshot"},
            "model": {"backend": "fake", "rules": [
                {"pattern": QUESTION.format(group), "responses": [
                    f" Join the last letters.\nAnswer: {answer}\nConfidence:\n- the answer is correct: 1.0\nscore: {score}"]}
                for group, answer, score in rules]}}


def test_dual_criteria_per_teacher_precision_and_confidence_curve(tmp_path):
    """Teacher a is always right at confidence 0.97; teacher b always wrong, at 0.99 on A-M and 0.6 on
    N-Z. At the recipe's 0.95 both pass on A-M (poisoned: one kept answer wrong), a alone on N-Z."""
    pytest.importorskip("sentence_transformers")  # curation loads the embedder (two outputs never need it)
    recipe = sc_recipe(teachers=[twt_teacher("a", [("A-Z", "\\2\\4", 0.97)]),
                                 twt_teacher("b", [("A-M", "\\2\\4x", 0.99), ("N-Z", "\\2\\4x", 0.6)])],
                       curation={"filter": "dual_criteria"})
    del recipe["teacher"]
    audit, _ = run_to_audit(recipe, tmp_path)
    by = groups(tmp_path)
    am = len(by["A-F"]) + len(by["G-M"])
    [entry] = audit["variants"]
    assert entry["kept"] == TRAIN and entry["right"] == TRAIN - am and entry["poisoned"] == am
    assert (entry["outputs"], entry["outputs_right"]) == (TRAIN + am, TRAIN)
    assert entry["per_teacher"]["a"] == {"inputs": TRAIN, "outputs": TRAIN, "right": TRAIN, "precision": 1.0,
                                         "precision_ci": wilson(TRAIN, TRAIN)}
    assert entry["per_teacher"]["b"]["precision"] == 0.0 and entry["per_teacher"]["b"]["outputs"] == am
    [curve] = entry["curves"]
    assert (curve["setting"], curve["chosen"], curve["reproduced"]) == ("threshold", 0.95, True)
    points = {p["threshold"]: (p["kept"], p["right"], p["outputs"], p["outputs_right"]) for p in curve["points"]}
    assert points == {0.6: (TRAIN, 0, 2 * TRAIN, TRAIN), 0.95: (TRAIN, TRAIN - am, TRAIN + am, TRAIN),
                      0.97: (TRAIN, TRAIN - am, TRAIN + am, TRAIN), 0.99: (am, 0, am, 0)}
    assert [p["threshold"] for p in curve["points"] if p["chosen"]] == [0.95]


def test_the_perturbation_filter_is_run_again_with_its_perturbed_outputs(tmp_path):
    """The fake says "yes" to every original coin question but answers the renamed copies right, so
    only inputs whose answer is "yes" agree: all kept are right, and System 1 ("yes") rescues none."""
    from tests.test_filters_in_pipeline import coin_rule

    rules = [coin_rule(a, b, "yes" if a == b else "no") for a in (True, False) for b in (True, False)]
    audit, _ = run_to_audit({
        "task": {"name": "coin_flip", "train_size": 16, "test_size": 4, "test_source": "generated"},
        "teacher": {"model": {"backend": "fake", "rules": rules, "default": " The answer is yes."},
                    "method": {"name": "cot", "shots": 2}, "samples": 2},
        "curation": {"filter": "perturbation"},
        "student": {"model": {"backend": "fake", "default": " yes"}, "method": {"name": "direct", "shots": 0}}}, tmp_path)
    [entry] = audit["variants"]
    assert 0 < entry["kept"] < 16 and entry["precision"] == 1.0 and (entry["rescued"], entry["poisoned"]) == (0, 0)
    [curve] = entry["curves"]
    assert curve["reproduced"] and [p["threshold"] for p in curve["points"]] == [0.0, 0.5]


def test_a_filter_without_a_threshold_has_no_curve_and_says_why(tmp_path):
    audit, _ = run_to_audit(sc_recipe(curation={"filter": "none"}), tmp_path)
    [entry] = audit["variants"]
    assert entry["curves"] == [] and entry["no_curve"] == "none has no threshold to vary"
    assert entry["kept"] == TRAIN and entry["outputs"] == 4 * TRAIN  # every output parses: all kept
    by = groups(tmp_path)
    right = sum(len(by[g]) * sum(r == RIGHT for r in GROUPS[g]) for g in GROUPS)
    assert entry["right"] == 0 and entry["outputs_right"] == right  # each input keeps a wrong answer too


# -- labels never reach curation ------------------------------------------------------------------

def _relabel(monkeypatch, change, reads: list | None = None):
    """The last-letters task with its train labels changed by `change(id, target)`; `reads` records
    each reading of the labels (the inputs read through `unlabeled` are not one)."""
    original = LastLetters.labeled

    def labeled(self, split):
        items = original(self, split)
        if split != "train":
            return items
        if reads is not None:
            reads.append(split)
        return [type(item)(item.example, change(item.example.id, item.target)) for item in items]

    monkeypatch.setattr(LastLetters, "labeled", labeled)
    monkeypatch.setattr(LastLetters, "unlabeled", lambda self, split: [i.example for i in original(self, split)])


def test_curation_output_is_byte_identical_without_labels_and_reads_none(tmp_path, monkeypatch):
    run_to_audit(sc_recipe(), tmp_path / "labelled")
    reads: list = []
    _relabel(monkeypatch, lambda _id, _target: "", reads)  # every label removed
    pipeline = Pipeline(validate_recipe(sc_recipe()), tmp_path / "removed", progress=False)
    ctx = pipeline.ctx
    with ctx.models:
        inputs = inputs_stage(ctx)
        samples = {("good", False): samples_stage(ctx, "good", inputs)}
        verdicts = curate_stage(ctx, pipeline.variants[0], inputs, samples)
        assert reads == []  # no label read by inputs, sampling or curation
        audit = audit_stages(ctx, [(pipeline.variants[0], verdicts)], inputs, samples)
    assert reads  # the audit read them, afterwards
    for name in ("curation/verdicts.jsonl", "samples/good.jsonl", "inputs/train.jsonl"):
        assert (tmp_path / "removed" / name).read_bytes() == (tmp_path / "labelled" / name).read_bytes(), name
    assert audit["variants"][0]["right"] == 0  # against no labels, nothing kept is right


def test_changing_a_label_redoes_only_the_audit(tmp_path, monkeypatch):
    first, _ = run_to_audit(sc_recipe(), tmp_path)
    target = groups(tmp_path)["A-F"][0]  # a kept, right input: its label made wrong
    _relabel(monkeypatch, lambda example_id, label: "qq" if example_id == target else label)
    again, pipeline = run_to_audit(sc_recipe(), tmp_path)
    redone = {r.name: r.status for r in pipeline.ctx.folder.log if r.status != "kept"}
    assert redone == {"audit:distilled": "redone"}
    assert again["variants"][0]["right"] == first["variants"][0]["right"] - 1
    assert again["variants"][0]["poisoned"] == first["variants"][0]["poisoned"] + 1


# -- a hand-labelled sample -------------------------------------------------------------------------

def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_hand_labels_give_the_figures_on_the_sample_with_intervals(tmp_path):
    run_to_audit(sc_recipe(), tmp_path / "first")  # the inputs file a user picks a sample from
    rows = read_jsonl(tmp_path / "first" / "inputs" / "train.jsonl")
    by = groups(tmp_path / "first")
    sample = by["A-F"][:3] + by["G-M"][:2] + by["T-Z"][:1]
    answers = {r["id"]: "".join(w[-1] for w in r["inputs"]["words"]) for r in rows}
    labels = [{"id": i, "label": answers[i]} for i in sample[:-1]]
    labels.append({"inputs": next(r["inputs"] for r in rows if r["id"] == sample[-1]), "label": answers[sample[-1]]})
    path = _write(tmp_path / "labels.jsonl", labels)
    audit, _ = run_to_audit(sc_recipe(curation={"filter": "self_consistency", "audit_labels": str(path)}), tmp_path / "hand")
    assert audit["labels"] == {"source": "hand", "file": str(path), "n": 6}
    [entry] = audit["variants"]
    assert (entry["inputs"], entry["kept"], entry["labelled"], entry["kept_labelled"]) == (
        TRAIN, len(by["A-F"]) + len(by["G-M"]), 6, 5)
    assert entry["right"] == 3 and entry["precision"] == 0.6 and entry["precision_ci"] == wilson(3, 5)
    assert entry["poisoned"] == 2
    assert len(read_jsonl(tmp_path / "hand" / "audit" / "system1-train.jsonl")) == 6  # asked on the sample only
    report_md = "\n".join(audit_lines({"curation_audit": audit, "rows": []}))
    assert "a hand-labelled sample of 6 training inputs" in report_md and "60.0% (23.1–88.2%) of 5" in report_md


def test_editing_the_hand_labels_file_redoes_the_audit_alone(tmp_path):
    """A label edited: the audit alone; an input added to the sample: System 1 is asked on it too."""
    run_to_audit(sc_recipe(), tmp_path / "first")
    ids = groups(tmp_path / "first")["A-F"][:3]
    path = _write(tmp_path / "labels.jsonl", [{"id": i, "label": "ab"} for i in ids])
    recipe = validate_recipe(sc_recipe(curation={"filter": "self_consistency", "audit_labels": str(path)}))
    before, _ = run_to_audit(recipe, tmp_path / "run")
    _write(path, [{"id": i, "label": "ab"} for i in ids[:2]] + [{"id": ids[2], "label": "zz"}])
    after, pipeline = run_to_audit(recipe, tmp_path / "run")
    assert {r.name for r in pipeline.ctx.folder.log if r.status != "kept"} == {"audit:distilled"}
    assert before["variants"][0]["kept_labelled"] == after["variants"][0]["kept_labelled"] == 3
    _write(path, [{"id": i, "label": "ab"} for i in ids + groups(tmp_path / "first")["G-M"][:1]])
    _, pipeline = run_to_audit(recipe, tmp_path / "run")
    assert {r.name for r in pipeline.ctx.folder.log if r.status != "kept"} == {"audit:system1-train", "audit:distilled"}


@pytest.mark.parametrize("rows, message", [
    (["{not json"], "line 1: not JSON"),
    ([{"id": "train-0"}], "line 1: no label"),
    ([{"label": "ab"}], "line 1: names no input"),
    ([{"id": "train-999", "label": "ab"}], "no training input has id 'train-999'"),
    ([{"inputs": {"words": ["No", "Body"]}, "label": "oy"}], "not a training input of this run"),
    ([{"id": "train-0", "label": "ab"}, {"id": "train-0", "label": "cd"}], "line 2: input 'train-0' is labelled twice"),
    ([], "no labelled input"),
])
def test_a_bad_hand_labels_file_is_refused_before_any_work(tmp_path, rows, message):
    path = _write(tmp_path / "labels.jsonl", rows)
    with pytest.raises(DataError, match=re.escape(message)):
        Pipeline(validate_recipe(sc_recipe(curation={"filter": "self_consistency", "audit_labels": str(path)})),
                 tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "inputs").exists()


def test_a_missing_hand_labels_file_fails_at_load(tmp_path):
    with pytest.raises(RecipeError, match="hand-labels file not found"):
        load_recipe(ROOT / "recipes" / "smoke.yaml", [f"curation.audit_labels={tmp_path / 'none.jsonl'}"])


# -- the whole run: the reports ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "smoke"
    mp = pytest.MonkeyPatch()
    mp.setenv("S2DISTILL_CACHE", str(out.parent / "completions.sqlite"))
    report = Pipeline(load_recipe(ROOT / "recipes" / "smoke.yaml"), out, progress=False).run()
    mp.undo()
    return out, report


def test_the_reports_show_the_audit_and_the_curve(smoke_run):
    out, report = smoke_run
    audit = report["curation_audit"]
    [entry] = audit["variants"]
    assert json.loads((out / "report.json").read_text())["curation_audit"] == audit
    assert entry["kept"] == report["curation"][0]["kept"] and entry["precision"] == 1.0 and entry["poisoned"] == 0
    md = (out / "report.md").read_text()
    assert "## Curation audit" in md and "precision of kept outputs (accuracy of the selected training data: our reading of TwT Table 5)" in md
    assert "| 0.5 ◀ recipe |" in md and "![precision and coverage against each threshold](threshold_curve.png)" in md
    assert (out / "threshold_curve.png").read_bytes()[:4] == b"\x89PNG" and report["audit_plot"]
    page = (out / "report.html").read_text()
    section = re.search(r'<section id="s-audit">.*?</section>', page, re.S).group(0)
    assert "<table id=audit>" in section and "class='chosen'" in section and "Rescued</b>" in section


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_audit_section_renders_in_a_browser(smoke_run):
    out, _ = smoke_run
    dom = dump_dom(out / "report.html")
    section = re.search(r'<section id="s-audit">.*?</section>', dom, re.S).group(0)
    assert re.search(r"<svg class=\"chart curve\"[^>]*data-setting=\"min_fraction\"", section)
    assert "polyline class=\"precision\"" in section and "line class=\"chosen\"" in section
    assert section.count("<tr>") >= 5  # the rescued examples


def test_a_changed_label_reruns_only_the_audit_in_a_whole_run(smoke_run, tmp_path, monkeypatch):
    out, report = smoke_run
    copy = tmp_path / "smoke"
    shutil.copytree(out, copy)
    monkeypatch.setenv("S2DISTILL_CACHE", str(out.parent / "completions.sqlite"))
    _relabel(monkeypatch, lambda example_id, label: "qq" if example_id == "train-0" else label)
    again = Pipeline(load_recipe(ROOT / "recipes" / "smoke.yaml"), copy, progress=False).run()
    assert {r["name"] for r in again["stages"]["ran"]} == {"audit:distilled"}
    assert again["lm"]["calls"] == 0
    assert again["curation_audit"]["variants"][0]["right"] == report["curation_audit"]["variants"][0]["right"] - 1


def test_a_hand_label_the_task_cannot_read_is_refused_at_load(tmp_path):
    """TriviaQA scores against a JSON list of aliases: a bare answer as a hand label is refused when
    the file is read, naming the line, not after training."""
    from s2distill.curation.hand_labels import read_hand_labels
    from s2distill.errors import DataError
    from s2distill.tasks.triviaqa import TriviaQA

    task = TriviaQA()
    example = task.unlabeled("train")[0]
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"id": example.id, "label": "Paris"}) + "\n")
    with pytest.raises(DataError, match=r"line 1: the task cannot read label 'Paris'"):
        read_hand_labels(path, [example], task.score)
    path.write_text(json.dumps({"id": example.id, "label": json.dumps(["Paris", "Paree"])}) + "\n")
    assert read_hand_labels(path, [example], task.score).targets == {example.id: '["Paris", "Paree"]'}
