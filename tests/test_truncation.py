"""Truncation is never silent (issue 25, item 2): an output cut at its `max_tokens` budget is recorded
(`Call.finish_reason`, `Trace.truncated`), kept out of curation as "truncated", never a training
target, a cut TwT rewrite is rejected, and the counts reach report.json, report.md, report.html and
the end of the run's console output, naming the setting to raise.

The fake LM cuts a response longer than `max_tokens` words and reports it "length"
(s2distill/lm/fake.py)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console

from s2distill.artifacts import read_jsonl
from s2distill.config.recipe import load_recipe, validate_recipe
from s2distill.curation.filters import (DiversePairFilter, DualCriteriaFilter, FilterInputs, NoFilter,
                                        PerturbationFilter, SelfConsistencyFilter, USCFilter, compose)
from s2distill.lm import FakeLM
from s2distill.methods.registry import REGISTRY
from s2distill.methods.runner import run_program
from s2distill.pipeline import Pipeline
from s2distill.report.browser import dump_dom, find_chromium
from s2distill.tasks.last_letters import LastLetters
from s2distill.types import Call, Example, Trace, Usage

LONG = " ".join(["word"] * 40)  # longer than every budget below


def _trace(sample: int, answer: str | None, *, cut: bool = False, confidence: float | None = 1.0) -> Trace:
    call = Call("prompt", "output", Usage(1, 1), finish_reason="length" if cut else "stop")
    return Trace("x", "pal", answer, [call], sample=sample, teacher="pal", confidence=confidence,
                 rationale=f"rationale {sample}")


# -- the record ------------------------------------------------------------------------------------

def test_a_call_records_its_finish_reason_and_old_rows_without_it_read_as_stop():
    cut = Trace("x", "cot", "ab", [Call("p", "o", Usage(1, 2)), Call("p", "o", Usage(1, 2), finish_reason="length")])
    assert cut.truncated and not Trace("x", "cot", "ab", [Call("p", "o", Usage(1, 2))]).truncated
    for trace in (cut, Trace("x", "cot", "ab", cut.calls, meta={"detail": 1})):  # both ways to_dict writes a row
        row = json.loads(json.dumps(trace.to_dict()))
        assert [c["finish_reason"] for c in row["calls"]] == ["stop", "length"]
        assert Trace.from_dict(row).truncated
    # A samples row written before calls recorded their finish reason.
    old = {"example_id": "x", "method": "pal", "answer": "ab", "error": None, "sample": 0, "meta": {},
           "calls": [{"prompt": "p", "output": "o", "usage": {"prompt_tokens": 1, "completion_tokens": 2},
                      "name": "program", "logprob": None}]}
    loaded = Trace.from_dict(old)
    assert loaded.calls[0].finish_reason == "stop" and not loaded.truncated


def _budgets(name: str) -> dict:
    """Every token budget of a method set to 4 words, so the fake's long reply is cut on every call."""
    fields = REGISTRY[name].config.model_fields
    return {key: 4 for key in fields if key.endswith("_tokens")}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_records_a_cut_call(name):
    """Whatever the method, a call cut at its budget makes its trace truncated (each records the
    completion's finish reason, through `ask` or its own `Call`)."""
    options = {"name": name, **_budgets(name), **({"samples": 2} if name == "usc" else {})}
    program = REGISTRY[name].config.model_validate(options).build(LastLetters())
    example = Example("x", {"words": ["Ada", "Bob"], "question": "Which is better?", "response_a": "A.",
                            "response_b": "B."})
    [trace] = run_program(program, [example], FakeLM(default=LONG))
    assert trace.calls and trace.truncated, (name, [c.finish_reason for c in trace.calls])
    assert not run_program(program, [example], FakeLM(default="word"))[0].truncated


# -- curation --------------------------------------------------------------------------------------

FILTERS = [SelfConsistencyFilter(vote="plurality"), NoFilter(), DualCriteriaFilter(threshold=0.5),
           DiversePairFilter(), PerturbationFilter(vote="plurality"), USCFilter()]


def _inputs(grouped) -> FilterInputs:
    def composed(outputs):  # the judge composes the answer its outputs agree on
        return {i: Trace(i, "usc_compose", next((t.answer for t in ts if t.answer), None), final_response="ab")
                for i, ts in outputs.items()}

    return FilterInputs(perturbed=lambda: grouped, compose=composed,
                        embed=lambda _name: lambda texts: np.eye(len(texts)))


@pytest.mark.parametrize("config", FILTERS, ids=lambda f: f.name)
def test_no_filter_keeps_a_truncated_output_even_when_it_parses(config):
    # Three of four samples were cut but still parse: they would win the vote; they are not counted.
    grouped = {"x": [_trace(0, "ab", cut=True), _trace(1, "ab", cut=True), _trace(2, "ab"), _trace(3, "ab", cut=True)]}
    [verdict] = compose([config], _inputs(grouped))(grouped)
    assert verdict.kept and [r.sample for r in verdict.kept_outputs] == [2], verdict
    assert verdict.reason.endswith("(3 of 4 samples truncated at max_tokens)") and verdict.meta["truncated"] == 3
    # Every sample cut: dropped, and the reason says so rather than "no parseable answer".
    every = {"x": [_trace(k, "ab", cut=True) for k in range(4)]}
    [verdict] = compose([config], _inputs(every))(every)
    assert not verdict.kept and verdict.kept_outputs == ()
    assert verdict.reason == "all 4 samples truncated at max_tokens"


def test_a_truncated_sample_counts_in_n_and_votes_for_nothing():
    grouped = {"x": [_trace(0, "ab", cut=True), _trace(1, "ab", cut=True), _trace(2, "ab", cut=True), _trace(3, "cd")]}
    [verdict] = compose([SelfConsistencyFilter()], FilterInputs())(grouped)
    assert not verdict.kept
    assert verdict.reason == "no majority: top answer 'cd' 1/4 <= 0.5 (3 of 4 samples truncated at max_tokens)"
    # Composed filters: the note is added once, after the last filter.
    [verdict] = compose([SelfConsistencyFilter(vote="plurality"), NoFilter()], FilterInputs())(grouped)
    assert verdict.kept and verdict.reason.count("truncated") == 1 and [r.sample for r in verdict.kept_outputs] == [3]


def test_a_usc_composition_cut_at_its_budget_is_never_the_target():
    grouped = {"x": [_trace(0, "ab"), _trace(1, "ab")]}
    cut = Trace("x", "usc_compose", "ab", [Call("p", "FINAL: a", Usage(1, 4), finish_reason="length")],
                final_response="a")
    [verdict] = compose([USCFilter()], FilterInputs(compose=lambda _: {"x": cut}))(grouped)
    assert not verdict.kept and verdict.composed is None and "truncated" in verdict.reason


# -- TwT compression -------------------------------------------------------------------------------

def test_a_twt_rewrite_cut_at_its_budget_is_rejected_and_the_full_rationale_kept():
    from s2distill.distill.compress import compression_program, judge_rewrite, rewritten_rationales

    original = " ".join(["step"] * 30)
    trace = Trace("x", "pal", "ab", [Call("p", original, Usage())], teacher="pal", rationale=original)
    example = Example("x", {"words": ["Ada", "Bob"]})
    # The refiner's rewrite is cut at 5 words: shorter than the original, yet rejected.
    refined = compression_program(LastLetters(), {"x": [trace]}, {"x": "ab"}, prompt_format="chat",
                                  max_tokens=5)(example, FakeLM(default=LONG))
    [rewrite] = refined.meta["rewrites"]
    assert len(rewrite["rewritten"]) < len(original) and refined.calls[0].finish_reason == "length"
    assert not rewrite["accepted"] and rewrite["truncated"] and rewrite["reason"] == "truncated at max_tokens"
    assert rewritten_rationales([{"id": "x", "rewrites": [rewrite]}]) == {("x", "pal", 0): original}
    # The same rewrite, not cut, is accepted (shorter, same answer).
    assert judge_rewrite(LastLetters(), original, "step step", "ab") == (True, f"{len(original)} -> 9 characters")
    # A rewrite that ends within its budget is not marked.
    uncut = compression_program(LastLetters(), {"x": [trace]}, {"x": "ab"}, prompt_format="chat",
                                max_tokens=5)(example, FakeLM(default="step step"))
    assert uncut.meta["rewrites"][0]["accepted"] and "truncated" not in uncut.meta["rewrites"][0]


# -- a whole run -----------------------------------------------------------------------------------

def _console() -> tuple[Console, io.StringIO]:
    text = io.StringIO()
    return Console(file=text, width=400, force_terminal=False), text


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory):
    """The smoke recipe with the programs' budget at 2 words: every program of two or more words is
    cut (all four samples of most inputs), so curation keeps nothing and System 2's answers are cut.
    (At 8 words, only the fake's ten-word programs are: 32 of 96 samples.)"""
    out = tmp_path_factory.mktemp("cut")
    smoke = Path(__file__).resolve().parents[1] / "recipes" / "smoke.yaml"
    recipe = load_recipe(smoke, ["teacher.method.max_tokens=2"])
    console, text = _console()
    report = Pipeline(recipe, out, progress=False, console=console).run()
    return out, report, text.getvalue()


def _truncated_rows(path) -> set[tuple[str, int]]:
    return {(r["example_id"], r["sample"]) for r in read_jsonl(path)
            if any(c.get("finish_reason") == "length" for c in r["calls"])}


def test_a_run_counts_truncated_samples_per_teacher_and_answers_per_evaluation(cut_run):
    out, report, _ = cut_run
    cut = _truncated_rows(out / "samples" / "pal.jsonl")
    [curation] = report["curation"]
    pal = curation["per_teacher"]["pal"]
    assert pal["truncated"] == len(cut) and 0 < len(cut) < pal["outputs"] == 96
    assert pal["parseable"] == 0 and curation["kept"] == 0 and pal["kept"] == 0
    system2 = next(r for r in report["rows"] if r["system"] == "system2")
    records = read_jsonl(out / "eval" / "system2-pal.jsonl")
    assert system2["truncated"] == sum(r["truncated"] for r in records) == 8
    assert json.loads((out / "report.json").read_text())["curation"] == report["curation"]


def test_verdicts_say_their_inputs_samples_were_truncated(cut_run):
    out, _, _ = cut_run
    cut = _truncated_rows(out / "samples" / "pal.jsonl")
    verdicts = read_jsonl(out / "curation" / "verdicts.jsonl")
    for v in verdicts:
        n = sum(1 for i, _ in cut if i == v["example_id"])
        assert not v["kept"] and v["meta"]["truncated"] == n
        if n == 4:
            assert v["reason"] == "all 4 samples truncated at max_tokens"
        else:  # the fake's one-word program (print(undefined_name)) fails in the sandbox: unparseable
            assert v["reason"] == f"no parseable answer in 4 samples ({n} of 4 samples truncated at max_tokens)"
    assert any(v["reason"].startswith("all 4") for v in verdicts)


def test_the_run_ends_naming_the_setting_to_raise_on_the_console_and_in_report_md(cut_run):
    out, report, console = cut_run
    expected = "% of pal's samples were cut at their budget (teacher.method.max_tokens = 2): raise it"
    assert any(line.endswith(expected) for line in report["truncation"])
    assert ("100% of system2 pal's answers were cut at their budget (teacher.method.max_tokens = 2): raise it"
            in report["truncation"])
    last = [line for line in console.splitlines() if line.strip()][-len(report["truncation"]):]
    assert last == [f"warning: {line}" for line in report["truncation"]], "the warnings are the run's last lines"
    markdown = (out / "report.md").read_text()
    assert all(f"**Truncated**: {line}." in markdown for line in report["truncation"])
    assert "| unparseable | truncated |" in markdown and "| outputs kept | truncated |" in markdown
    pal = report["curation"][0]["per_teacher"]["pal"]
    assert f"| pal | 96 | 0 | 0 | {pal['truncated']} |" in markdown


def test_the_page_shows_the_truncated_counts(cut_run):
    out, report, _ = cut_run
    page = (out / "report.html").read_text()
    systems = re.search(r"<table id=systems>.*?</table>", page, re.S).group(0)
    assert "<th class=n>truncated</th>" in systems and "<td class=n>8</td>" in systems
    table = re.search(r"<table class=curation.*?</table>", page, re.S).group(0)
    pal = report["curation"][0]["per_teacher"]["pal"]
    assert f"<td class=n colspan=2>{pal['truncated']} of 96</td>" in table


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_marks_a_truncated_sample(cut_run):
    out, _, _ = cut_run
    verdict = next(v for v in read_jsonl(out / "curation" / "verdicts.jsonl") if v["reason"].startswith("all 4"))
    dom = dump_dom(out / "report.html", f"split=train&open={verdict['example_id']}")
    detail = re.search(r'<tbody id="rows">.*?(<tr class="detail">.*?</tr>)', dom, re.S).group(1)
    assert detail.count("truncated at max_tokens (never kept)") == 4 and "cut at its budget" in detail


def test_a_sample_cut_but_still_parseable_is_never_kept_nor_a_training_pair(recipes_dir, tmp_path):
    """Two samples of four end in a comment the budget cuts: the program still runs and gives the
    right answer, but only the two whole samples are kept and become pairs."""
    data = yaml.safe_load((recipes_dir / "smoke.yaml").read_text())
    whole = 'print("".join(w[-1] for w in ["\\1", "\\2"]))\n\n'  # 6 words
    commented = 'print("".join(w[-1] for w in ["\\1", "\\2"]))\n# a comment far longer than the budget allows\n\n'
    data["teacher"]["model"]["rules"] = [{"pattern": r'"(\w+) (\w+)" and concatenate them\.\n$',
                                          "responses": [whole, commented, whole, commented]}]
    data["teacher"]["method"]["max_tokens"] = 8
    data["curation"] = {"vote": "plurality"}
    data["distill"] = {"stages": ["full_reasoning"]}
    report = Pipeline(validate_recipe(data), tmp_path, progress=False).run()
    cut = _truncated_rows(tmp_path / "samples" / "pal.jsonl")
    assert {k for _, k in cut} == {1, 3} and len(cut) == 48
    assert all(r["answer"] for r in read_jsonl(tmp_path / "samples" / "pal.jsonl"))  # the cut ones parse too
    [curation] = report["curation"]
    assert curation["kept"] == 24 and curation["per_teacher"]["pal"] == {"outputs": 96, "parseable": 48, "kept": 48,
                                                                           "truncated": 48}
    for v in read_jsonl(tmp_path / "curation" / "verdicts.jsonl"):
        assert {ref["sample"] for ref in v["kept_outputs"]} == {0, 2}
        assert v["reason"].endswith("(2 of 4 samples truncated at max_tokens)")
    pairs = read_jsonl(tmp_path / "distill" / "distilled" / "stage1-full_reasoning.jsonl")
    assert pairs and not {(p["id"], p["sample"]) for p in pairs} & cut
    assert not any("# a comment" in p["completion"] for p in pairs)
    line = "50% of pal's samples were cut at their budget (teacher.method.max_tokens = 8): raise it"
    assert line in report["truncation"]


def test_a_cut_usc_composition_is_counted_in_a_filter_chain_and_beside_truncated_samples():
    """USC's cut compositions are counted by their flag: a chain prefixes the reason ("usc: ...") and
    truncated samples append to it, and neither hides the count that names curation.usc_max_tokens."""
    from s2distill.curation.usc import COMPOSITION_TRUNCATED
    from s2distill.distill.variants import Variant
    from s2distill.report.summary import curation_summary
    from s2distill.types import Verdict

    variant = Variant("distilled", ("pal",), (USCFilter(),), False, ("answer_only",))
    verdicts = [Verdict("a", False, f"usc: {COMPOSITION_TRUNCATED} (1 of 2 samples truncated)", None, "usc",
                        meta={"composition_truncated": True}),
                Verdict("b", True, "composed", "ab", "usc")]
    assert curation_summary(variant, verdicts, [])["compositions_truncated"] == 1
