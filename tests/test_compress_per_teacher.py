"""TwT's compression as the paper describes it (issue 25, item 3): each teacher rewrites its own
rationales with its own model (Section 3.2, Figure 8's "your previous thinking"), unless
`distill.refiner` names one teacher for all; the rewrite's budget is `distill.rewrite_max_tokens`.

Two fake teachers, `a` and `b`, write different programs for the same answers and rewrite them
differently, so every rewrite says which model made it; each fake LM keeps the requests it got."""

from __future__ import annotations

import io
import shutil

import pytest
import yaml
from rich.console import Console

from s2distill.artifacts import read_jsonl
from s2distill.config.recipe import validate_recipe
from s2distill.lm.fake import FakeLM
from s2distill.models import build_from_config
from s2distill.pipeline import Pipeline
from s2distill.stages.context import RunContext
from s2distill.stages.specs import CompressSpec

QUESTION = r'# Q: Take the last letters of the words in "(\w+) (\w+)" and concatenate them.\n$'
REFINE = r'"(\w+) (\w+)" and concatenate them\.\nYour previous thinking process:'
PROGRAM = {  # each teacher's program: the same answer, written its own way
    "a": 'words = ["\\1", "\\2"]\nanswer = "".join(word[-1] for word in words)\nprint(answer)\n\n',
    "b": '# the last letter of each word, joined\nwords = ["\\1", "\\2"]\nletters = [w[-1] for w in words]\n'
         'print("".join(letters))\n\n',
}
REWRITE = {  # each teacher's rewrite: a's three words, b's eleven (cut by a budget of 8)
    "a": 'print("\\1"[-1] + "\\2"[-1])\n\n',
    "b": 'print("".join(w[-1] for w in ["\\1", "\\2"])) # the last letters, joined\n\n',
}
STAGE2 = {"compress:distilled/stage2-compressed_reasoning", "distill:distilled/stage2-compressed_reasoning",
          "train:distilled/stage2", "eval:distilled-stage2"}


def _teacher(name: str) -> dict:
    return {"name": name, "samples": 2, "temperature": 0.7, "method": {"name": "pal", "shots": 2},
            "model": {"backend": "fake", "default": f"teacher {name}",
                      "rules": [{"pattern": QUESTION, "responses": [PROGRAM[name]]},
                                {"pattern": REFINE, "responses": [REWRITE[name]]}]}}


def _data(cache) -> dict:
    return {"name": "per-teacher", "task": {"name": "last_letters", "train_size": 12, "test_size": 4, "seed": 0},
            "teachers": [_teacher("a"), _teacher("b")],
            "student": {"model": {"backend": "tiny", "dtype": "float32"},
                        "method": {"name": "direct", "shots": 2, "max_tokens": 6}},
            "curation": {"min_fraction": 0.5},
            "distill": {"stages": ["full_reasoning", "compressed_reasoning"], "reasoning_max_tokens": 24},
            "evaluate": {"systems": ["distilled"]},
            "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "lora_r": 4, "lora_alpha": 8,
                      "precision": "float32"},
            "workers": 4, "cache": str(cache)}


class Recorded:
    """One run of the pipeline: the fake LM each teacher's model was built as, the progress
    labels of the stages' model runs, and what the console said."""

    def __init__(self, data: dict, out, overrides: dict | None = None):
        data = yaml.safe_load(yaml.safe_dump(data))
        for key, value in (overrides or {}).items():
            data["distill"][key] = value
        self.lms: dict[str, FakeLM] = {}
        self.labels: list[str] = []

        def factory(config, *, adapter=None):
            lm = build_from_config(config, adapter=adapter)
            if isinstance(lm, FakeLM):
                self.lms[config.default.removeprefix("teacher ")] = lm
            return lm

        text = io.StringIO()
        mp = pytest.MonkeyPatch()
        original = RunContext.run
        mp.setattr(RunContext, "run", lambda ctx, label, *a, **k: (self.labels.append(label),
                                                                   original(ctx, label, *a, **k))[1])
        try:
            self.pipeline = Pipeline(validate_recipe(data), out, progress=False, lm_factory=factory,
                                     console=Console(file=text, width=400, force_terminal=False))
            self.report = self.pipeline.run()
        finally:
            mp.undo()
        self.console = text.getvalue()
        self.out = out
        self.rows = read_jsonl(out / "distill" / "distilled" / "stage2-compressed_reasoning.rewrites.jsonl")
        self.rewrites = [r for row in self.rows for r in row["rewrites"]]

    def refine_requests(self, teacher: str) -> list:
        lm = self.lms.get(teacher)
        return [r for r in (lm.requests if lm else []) if "Your previous thinking process:" in (r.prompt or "")]

    @property
    def redone(self) -> set[str]:
        return {r.name for r in self.pipeline.ctx.folder.log if r.status != "kept"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("per-teacher")
    data = _data(root / "completions.sqlite")
    return data, Recorded(data, root / "run")


def _rerun(finished, tmp_path, **overrides) -> Recorded:
    data, first = finished
    shutil.copytree(first.out, tmp_path / "run")
    return Recorded(data, tmp_path / "run", overrides)


def _who_wrote(request) -> str:
    """Whose program a refinement prompt rewrites (the last "Your previous thinking process:" is
    the input's; the few-shot exemplar's comes first)."""
    rationale = request.prompt.rsplit("Your previous thinking process:", 1)[1]
    return "b" if "letters = [w[-1]" in rationale else "a"


def test_each_teacher_rewrites_its_own_rationales_with_its_own_model(finished):
    _, run = finished
    assert run.rewrites and {r["teacher"] for r in run.rewrites} == {"a", "b"}
    for r in run.rewrites:  # recorded, and made by the teacher's own rule
        assert r["refiner"] == r["teacher"] and r["accepted"], r
        assert r["rewritten"].startswith('print("".join(') == (r["teacher"] == "b")
    # Each model was asked about its own programs only, within the default budget.
    for name in ("a", "b"):
        asked = run.refine_requests(name)
        assert asked and {_who_wrote(r) for r in asked} == {name}
        assert {r.max_tokens for r in asked} == {160}
    # One batch per teacher, each progress label naming it; the counts per teacher on the console.
    assert [label for label in run.labels if "compression" in label] == [
        "a: teacher-guided compression of its own rationales", "b: teacher-guided compression of its own rationales"]
    per = {name: sum(r["refiner"] == name for r in run.rewrites) for name in ("a", "b")}
    assert f"    a rewrote {per['a']}: {per['a']} accepted\n" in run.console
    assert f"    b rewrote {per['b']}: {per['b']} accepted\n" in run.console
    assert f"  {len(run.rewrites)} of {len(run.rewrites)} rewrites accepted (the others keep the full rationale)\n" \
        in run.console


def test_a_named_refiner_rewrites_every_teachers_rationales(finished, tmp_path):
    run = _rerun(finished, tmp_path, refiner="a")
    assert run.redone == STAGE2  # the stage-1 student, the samples and curation are kept
    assert {r["teacher"] for r in run.rewrites} == {"a", "b"} and {r["refiner"] for r in run.rewrites} == {"a"}
    assert not run.refine_requests("b")
    # a's model rewrote b's programs (its own rewrites of its own are replayed from the cache)
    assert {_who_wrote(r) for r in run.refine_requests("a")} == {"b"}
    assert [label for label in run.labels if "compression" in label] == [
        "a: teacher-guided compression of every teacher's rationales"]
    assert all(not r["rewritten"].startswith('print("".join(') for r in run.rewrites)  # a's rule, for b's too


def test_the_rewrite_budget_reaches_the_requests_and_a_cut_rewrite_is_rejected(finished, tmp_path):
    """A budget of 8 cuts b's eleven-word rewrites (rejected, the full rationale kept) and not a's;
    changing it redoes the compression and what follows, nothing before."""
    from s2distill.distill.compress import rewrite_counts, rewritten_rationales

    run = _rerun(finished, tmp_path, rewrite_max_tokens=8)
    assert run.redone == STAGE2
    for name in ("a", "b"):
        assert run.refine_requests(name) and {r.max_tokens for r in run.refine_requests(name)} == {8}
    counts = rewrite_counts(run.rows)
    assert counts["a"]["accepted"] == counts["a"]["rewrites"] > 0
    assert counts["b"]["truncated"] == counts["b"]["rewrites"] > 0 and counts["b"]["accepted"] == 0
    for r in run.rewrites:
        assert r["accepted"] == (r["teacher"] == "a") and r.get("truncated", False) == (r["teacher"] == "b")
    kept = rewritten_rationales(run.rows)
    assert all(kept[(row["id"], r["teacher"], r["sample"])] == r["original"]
               for row in run.rows for r in row["rewrites"] if r["teacher"] == "b")
    b = counts["b"]["rewrites"]
    assert f"; {b} rejected as truncated at max_tokens\n" in run.console  # the line the stage always printed
    assert f"    b rewrote {b}: 0 accepted, {b} cut at their budget (distill.rewrite_max_tokens = 8)\n" in run.console


def test_the_compressor_is_per_teacher_too(finished, tmp_path):
    """Table 6's compressor: each teacher compresses its own rationales, without the student's output."""
    run = _rerun(finished, tmp_path, compression="compressor")
    # the fakes rewrite the same without the student's output: the same pairs, so the same student
    assert run.redone == {"compress:distilled/stage2-compressed_reasoning",
                          "distill:distilled/stage2-compressed_reasoning"}
    assert all(row["student"] is None for row in run.rows)
    assert all(r["refiner"] == r["teacher"] and r["accepted"] for r in run.rewrites)
    for name in ("a", "b"):
        asked = run.refine_requests(name)
        assert asked and {_who_wrote(r) for r in asked} == {name}
        assert all("Please compress your previous thinking process" in r.prompt for r in asked)
    assert [label for label in run.labels if "compression" in label] == [
        "a: compressor compression of its own rationales", "b: compressor compression of its own rationales"]


def _spec(**fields) -> CompressSpec:
    recipe = validate_recipe({"task": {"name": "last_letters"}})
    return CompressSpec(compression="teacher_guided", student_method=recipe.student.method, max_per_input=None,
                        reasoning_max_tokens=160, task={}, **fields)


def test_a_single_teachers_compression_keeps_the_fingerprint_it_had_before_the_budget_was_a_setting():
    """Before this change the spec had no `refiners` nor `rewrite_max_tokens` (160, fixed): a
    single-teacher recipe at the default budget has the same identity, so its runs keep their
    compression; another budget, or teachers each refining their own, is another identity."""
    teacher = validate_recipe({"task": {"name": "last_letters"}}).teachers[0]
    before = {"spec", "compression", "ratio", "refiner", "student_method", "max_per_input", "reasoning_max_tokens",
              "task", "student_model"}
    assert set(_spec(refiner=teacher, rewrite_max_tokens=160).identity()) == before
    assert _spec(refiner=teacher, rewrite_max_tokens=2048).identity()["rewrite_max_tokens"] == 2048
    own = _spec(refiners={teacher.name: teacher}, rewrite_max_tokens=160)
    assert own.identity() != _spec(refiner=teacher, rewrite_max_tokens=160).identity()
    assert own.refining() == [(teacher, (teacher.name,))]
