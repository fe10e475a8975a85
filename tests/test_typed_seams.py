"""The typed seams between stages: curation's `Verdict` (what distillation reads of it is typed:
`kept_outputs`, `composed`) and the report's `Row` (what every reader of the report reads), each
read back from artifacts written by this version and by the ones before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2distill.report.row import Row, rows_of
from s2distill.types import Call, Example, OutputRef, Trace, Usage, Verdict

# -- Verdict --------------------------------------------------------------------------------------

# Verdict rows as curation/*.jsonl held them before `kept_outputs` and `composed` were fields.
OLD_SELF_CONSISTENCY_ROW = {
    "example_id": "train-3", "kept": True, "reason": "top answer 'ab' 3/4", "answer": "ab", "filter": "self_consistency",
    "meta": {"votes": {"ab": 3, "cd": 1}, "samples": 4, "vote": "majority",
             "kept": [{"teacher": "pal", "sample": 0, "answer": "ab"}, {"teacher": "pal", "sample": 2, "answer": "ab"},
                      {"teacher": "pal", "sample": 3, "answer": "ab"}]},
}
OLD_USC_ROW = {
    "example_id": "train-7", "kept": True, "reason": "composed from 4 of 4 outputs: 'ab' (2 agree)", "answer": "ab",
    "filter": "usc",
    "meta": {"kept": [{"teacher": "pal", "sample": 1, "answer": "ab"}, {"teacher": "cot", "sample": 0, "answer": "ab"}],
             "composed": "The answer is ab.", "fallback": "all"},
}
OLD_DROPPED_ROW = {
    "example_id": "train-4", "kept": False, "reason": "tie: 'ab' and 'cd' both 2/4", "answer": None,
    "filter": "self_consistency", "meta": {"votes": {"ab": 2, "cd": 2}, "samples": 4, "vote": "majority"},
}


def test_an_old_verdict_row_reads_with_its_kept_outputs_and_composition_as_fields():
    v = Verdict.from_row(OLD_SELF_CONSISTENCY_ROW)
    assert v.kept and v.answer == "ab" and v.composed is None
    assert v.kept_outputs == (OutputRef("pal", 0, "ab"), OutputRef("pal", 2, "ab"), OutputRef("pal", 3, "ab"))
    assert all(type(ref) is OutputRef for ref in v.kept_outputs)
    assert v.meta == {"votes": {"ab": 3, "cd": 1}, "samples": 4, "vote": "majority"}  # diagnostics only

    usc = Verdict.from_row(OLD_USC_ROW)
    assert usc.composed == "The answer is ab." and usc.meta == {"fallback": "all"}
    assert [ref.key for ref in usc.kept_outputs] == [("pal", 1), ("cot", 0)]

    dropped = Verdict.from_row(OLD_DROPPED_ROW)
    assert not dropped.kept and dropped.kept_outputs == () and dropped.meta["votes"] == {"ab": 2, "cd": 2}
    assert OLD_SELF_CONSISTENCY_ROW["meta"]["kept"], "the row given is not changed"


def test_a_verdict_round_trips_through_its_row_and_json():
    v = Verdict("x", True, "top answer 'ab' 2/3", "ab", "usc", {"fallback": None},
                kept_outputs=[OutputRef("pal", 0, "ab"), OutputRef("cot", 4)], composed="ab")
    assert isinstance(v.kept_outputs, tuple)  # given as a list, held as a tuple
    row = json.loads(json.dumps(v.to_row()))
    assert row["kept_outputs"] == [{"teacher": "pal", "sample": 0, "answer": "ab"},
                                   {"teacher": "cot", "sample": 4, "answer": None}]
    assert row["composed"] == "ab" and row["meta"] == {"fallback": None}
    assert Verdict.from_row(row) == v
    # A row of the new shape written again reads the same (the shim leaves it alone).
    assert Verdict.from_row(Verdict.from_row(row).to_row()) == v
    # Built from its fields as JSON gave them back (a [teacher, sample, answer] list per output).
    assert Verdict(**json.loads(json.dumps(v.__dict__))) == v


def test_the_verdicts_artifact_codec_round_trips_and_reads_old_rows(tmp_path):
    from s2distill.artifacts import write_jsonl
    from s2distill.stages.folder import VERDICTS

    verdicts = [Verdict.from_row(OLD_SELF_CONSISTENCY_ROW), Verdict.from_row(OLD_USC_ROW), Verdict.from_row(OLD_DROPPED_ROW)]
    VERDICTS.save(tmp_path / "new.jsonl", verdicts, {})
    assert list(VERDICTS.load(tmp_path / "new.jsonl")) == verdicts
    write_jsonl(tmp_path / "old.jsonl", [OLD_SELF_CONSISTENCY_ROW, OLD_USC_ROW, OLD_DROPPED_ROW])
    assert list(VERDICTS.load(tmp_path / "old.jsonl")) == verdicts


def test_readers_of_verdicts_read_the_typed_fields():
    from s2distill.curation.filters import NoFilter, SelfConsistencyFilter, FilterInputs, compose
    from s2distill.distill.pairs import distill_pairs, kept_traces
    from s2distill.report.summary import curation_summary
    from s2distill.tasks.last_letters import LastLetters

    traces = {("train-7", t, k): Trace("train-7", "pal", "ab", [Call("p", "the program", Usage(1, 2))], sample=k,
                                       teacher=t, rationale="the program")
              for t, k in (("pal", 1), ("cot", 0))}
    usc = Verdict.from_row(OLD_USC_ROW)
    assert [t.teacher for t in kept_traces([usc], traces)["train-7"]] == ["pal", "cot"]
    task, example = LastLetters(), Example("train-7", {"words": ["Ada", "Bo"]})
    [pair] = distill_pairs("answer_only", task, [example], [usc], traces, shots=0)
    assert pair["teacher"] == "usc" and pair["completion"] == " The answer is ab.\n"  # the composition is the target
    assert len(distill_pairs("full_reasoning", task, [example], [usc], traces, shots=0)) == 1  # one distinct rationale

    class Variant:  # what curation_summary reads of a variant
        name, filter, first_sample_only, sources, filters = "distilled", "usc", False, ["pal", "cot"], []

    summary = curation_summary(Variant, [usc, Verdict.from_row(OLD_DROPPED_ROW)], [("pal", True), ("cot", True)])
    assert summary["kept"] == 1 and summary["per_teacher"]["pal"]["kept"] == summary["per_teacher"]["cot"]["kept"] == 1

    # Composed filters: the next filter sees only the outputs the previous one kept.
    outputs = {"x": [Trace("x", "pal", a, sample=k, teacher="pal") for k, a in enumerate(["ab", "ab", "cd", None])]}
    [v] = compose([SelfConsistencyFilter(vote="plurality"), NoFilter()], FilterInputs())(outputs)
    assert v.kept and [r.key for r in v.kept_outputs] == [("pal", 0), ("pal", 1)] and "kept" not in v.meta


# -- Row ------------------------------------------------------------------------------------------

# Rows as report.json held them before rows were typed: a System 1 row from before the cost columns
# and the task's own metrics were recorded, a maj@k System 2 row, and an untrained stage's row.
OLD_SYSTEM1_ROW = {"system": "system1", "method": "direct", "task": "last_letters", "metric": "exact_match",
                   "score": 0.25, "n": 8, "tokens_per_example": 3.0, "unparseable": 2, "teacher": None,
                   "model": "fake", "shots": 2}
OLD_SYSTEM2_ROW = {"system": "system2", "method": "pal", "task": "triviaqa", "metric": "exact_match", "score": 0.875,
                   "n": 8, "tokens_per_example": 41.5, "unparseable": 1,
                   "metrics": {"biased_accuracy": 0.5, "unbiased_accuracy": 0.75},
                   "prompt_tokens_per_example": 300.0, "seconds": 1.5, "seconds_per_example": 0.1875,
                   "examples_per_second": 5.333, "teacher": "pal", "model": "fake", "shots": 2, "majority_of": 5,
                   "test": "words=3", "an_older_key": [1, 2]}
OLD_UNTRAINED_ROW = {"system": "distill_system1", "stage": "1/1 answer_only", "method": "direct", "task": "last_letters",
                     "metric": "exact_match", "score": None, "n": 0, "tokens_per_example": None, "unparseable": 0,
                     "model": "tiny test model", "train_pairs": 0, "note": "not trained: curation kept no input",
                     "shots": 2}
OLD_ROWS = [OLD_SYSTEM1_ROW, OLD_SYSTEM2_ROW, OLD_UNTRAINED_ROW]


def test_an_old_report_row_reads_as_a_row_and_writes_back_its_keys():
    s1, s2, untrained = (Row.from_dict(r) for r in OLD_ROWS)
    assert (s1.system, s1.score, s1.metrics, s1.teacher, s1.prompt_tokens_per_example) == ("system1", 0.25, {}, None, None)
    assert s2.metrics == {"biased_accuracy": 0.5, "unbiased_accuracy": 0.75} and s2.majority_of == 5
    assert s2.extra == {"an_older_key": [1, 2]}
    assert s2.detail == "pal maj@5 [test: words=3]" and s2.method_label == "pal, 2-shot"
    assert untrained.score is None and untrained.note.startswith("not trained") and untrained.detail == "1/1 answer_only"
    for old in OLD_ROWS:
        written = Row.from_dict(old).to_dict()
        assert written == {**written, **old}, "every key of the old row is written back with its value"
        assert json.loads(json.dumps(written)) == written


def test_a_row_round_trips_through_its_dict_and_json():
    row = Row("distilled", "direct", "last_letters", "exact_match", 0.5, 8, 2.0, 0, {"pairs": 12.0},
              prompt_tokens_per_example=80.0, seconds=0.4, seconds_per_example=0.05, examples_per_second=20.0,
              stage="1/2 answer_only", model="tiny", shots=2, train_pairs=12, eval_name="distilled-stage1",
              extra={"future": "kept"})
    data = json.loads(json.dumps(row.to_dict()))
    assert data["future"] == "kept" and "extra" not in data and data["eval_name"] == "distilled-stage1"
    assert Row.from_dict(data) == row
    assert row["score"] == 0.5 and row.get("teacher") is None and row.get("nothing", 3) == 3  # read as the dict too
    with pytest.raises(KeyError):
        row["nothing"]
    assert rows_of([row, data]) == [row, row]


def _report(rows) -> dict:
    return {"name": "smoke", "task": "last_letters", "teachers": "pal: pal on fake", "student": "tiny", "rows": rows,
            "curation": [], "lm": {"calls": 3, "cached": 0}, "timings": {"samples": 1.0}, "invocation_seconds": 2.0,
            "machine": {"cpus": 2}}


def test_every_reader_of_the_report_reads_rows():
    from s2distill.report.html import systems_table
    from s2distill.report.summary import render_markdown, row_detail, row_method

    typed = [Row.from_dict(r) for r in OLD_ROWS]
    markdown = render_markdown(_report(typed))
    assert markdown == render_markdown(_report(OLD_ROWS)) == render_markdown(_report([r.to_dict() for r in typed]))
    # (rows from before truncation was counted read as none truncated)
    assert "| system1 |  | direct, 2-shot | fake | 25.0% |  |  | 8 | 2 | 0 | 3.0 | — | — |" in markdown
    assert ("| system2 | pal maj@5 [test: words=3] | pal, 2-shot | fake | 87.5% | 50.0% | 75.0% | 8 | 1 | 0 | 41.5 "
            "| 300.0 | 5.33 |") in markdown
    assert "| distill_system1 | 1/1 answer_only | direct, 2-shot | tiny test model | — (not trained" in markdown
    assert row_detail(OLD_SYSTEM2_ROW) == row_detail(typed[1]) == typed[1].detail
    assert row_method(OLD_SYSTEM2_ROW) == typed[1].method_label
    table = systems_table(typed)
    assert table.count("<tr class='sys-") == 3 and "87.5%" in table and "— (not trained: curation kept no input)" in table


def test_the_plot_reads_rows(tmp_path):
    from s2distill.report.plot import plot_score_vs_tokens

    typed = [Row.from_dict(r) for r in OLD_ROWS]
    path = plot_score_vs_tokens(typed, tmp_path / "plot.png", title="t")
    assert path is None or path.stat().st_size > 0  # None: matplotlib is not installed
    if path is not None:
        assert plot_score_vs_tokens(OLD_ROWS, tmp_path / "again.png", title="t") is not None


def test_the_html_finds_each_rows_evaluation_by_its_name_or_for_an_old_row_by_its_labels(tmp_path):
    from s2distill.report.html import _systems

    (tmp_path / "eval").mkdir()
    for name in ("system1", "system2-pal-maj5"):
        (tmp_path / "eval" / f"{name}.jsonl").write_text("")
    (tmp_path / "eval" / "system1.json").write_text(json.dumps({"system": "system1", "method": "direct"}))
    # An old report's eval/NAME.json held the row's labels: the row is matched by them.
    (tmp_path / "eval" / "system2-pal-maj5.json").write_text(json.dumps(OLD_SYSTEM2_ROW))
    rows = [Row.from_dict({**OLD_SYSTEM1_ROW, "eval_name": "system1"}), Row.from_dict(OLD_SYSTEM2_ROW),
            Row.from_dict(OLD_UNTRAINED_ROW)]
    systems = _systems(tmp_path, rows)
    assert [s["key"] for s in systems] == ["system1", "system2-pal-maj5"]
    assert systems[1]["label"] == "System 2 · pal maj@5 [test: words=3] · pal, 2-shot"


def test_the_model_card_reads_rows(tmp_path):
    from s2distill.student.export import model_card

    (tmp_path / "report.json").write_text(json.dumps(_report(OLD_ROWS)))
    spec = {"student_model": {"backend": "tiny"}, "train_mode": "lora", "prompt": "Q: {question}\nA:", "stop": ["\n"],
            "max_tokens": 8}
    card = model_card(tmp_path, tmp_path / "train" / "stage1" / "weights", spec, variant="distilled")
    assert "| system2 | pal | pal | 87.5% | exact_match | 8 | 41.5 |" in card
    assert "| distill_system1 | 1/1 answer_only | direct | — | exact_match | 0 | — |" in card


def test_the_api_gives_rows():
    from s2distill.api import Report

    report = Report(_report(OLD_ROWS), Path("runs/x"))
    assert all(isinstance(r, Row) for r in report.rows)
    assert report.row("system2").score == 0.875 and report.row("system2")["score"] == 0.875  # as documented before
    assert report.row("distill_system1").note.startswith("not trained")
    with pytest.raises(KeyError, match="systems: system1, system2, distill_system1"):
        report.row("distilled")
    assert report["rows"] == OLD_ROWS  # the data is report.json's, dicts
