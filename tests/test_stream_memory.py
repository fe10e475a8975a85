"""Memory flat in the number of inputs: the stages stream their results input by input.

Behavioural, not timed: the traces alive at once are counted while the stages run over many
inputs, and must stay at a chunk's worth, not grow with the inputs (benchmarks/scale.py measures
the memory itself)."""

from __future__ import annotations

import threading
import weakref

import pytest
from rich.console import Console

from s2distill.config.recipe import Recipe
from s2distill.errors import RunFolderError
from s2distill.lm import FakeLM
from s2distill.methods.runner import iter_program
from s2distill.models import Models
from s2distill.report.summary import curation_summary
from s2distill.stages import curate
from s2distill.stages.context import RunContext
from s2distill.stages.curate import curate_stage, variant_traces
from s2distill.stages.distill import Step, set_stage
from s2distill.stages.folder import Rows, RunFolder
from s2distill.stages.sampling import inputs_stage, samples_stage
from s2distill.types import Example, Request, Trace
from s2distill.distill.variants import plan_variants

RIGHT = 'Concatenating them is "\\2\\4".\nFinal answer: \\2\\4'
WRONG = 'Final answer: \\4\\2'
INPUTS, SAMPLES = 200, 4


class LiveTraces:
    """Counts the `Trace` objects alive, and the most alive at once, while installed."""

    def __init__(self, monkeypatch):
        self.live = self.peak = 0
        self.lock = threading.Lock()
        init = Trace.__init__

        def counted(trace, *args, **kwargs):
            init(trace, *args, **kwargs)
            with self.lock:
                self.live += 1
                self.peak = max(self.peak, self.live)
            weakref.finalize(trace, self._gone)

        monkeypatch.setattr(Trace, "__init__", counted)

    def _gone(self) -> None:
        with self.lock:
            self.live -= 1

    def reset(self) -> None:
        with self.lock:
            self.peak = self.live


def recipe(filters) -> Recipe:
    question = r'in "({first}\w*)(\w) (\w*)(\w)" and concatenate them\.\nSolution:$'
    rules = [{"pattern": question.format(first="[A-Ha-h]"), "responses": [RIGHT, WRONG]},  # a tie: dropped
             {"pattern": question.format(first=""), "responses": [RIGHT, RIGHT, WRONG, RIGHT]}]
    return Recipe.model_validate({
        "name": "stream", "task": {"name": "last_letters", "train_size": INPUTS, "test_size": 4, "seed": 0},
        "teacher": {"model": {"backend": "fake", "rules": rules}, "method": {"name": "cot", "shots": 0},
                    "samples": SAMPLES, "temperature": 0.7},
        "student": {"model": {"backend": "fake"}, "method": {"name": "direct", "shots": 0}},
        "curation": {"filter": filters}, "workers": 2,
    })


@pytest.mark.parametrize("filters", ["self_consistency", ["none", "self_consistency"]])
def test_each_stage_holds_a_chunk_of_traces_not_every_input(tmp_path, monkeypatch, filters):
    """Sampling, curation, the summary and the training set over 200 inputs × 4 samples: at no
    point are more than two chunks' traces (the one filtered, the next one read) and the runner's
    few in flight alive, where holding every trace, as the stages did, is 800."""
    monkeypatch.setattr(curate, "CHUNK", 16)  # and 8 × workers = 16: chunks of 16 inputs, 64 traces
    live = LiveTraces(monkeypatch)
    r = recipe(filters)
    console = Console(quiet=True)
    ctx = RunContext.open(r, RunFolder(tmp_path, console), Models(tmp_path / "cache.sqlite"), console=console,
                          show_progress=False)
    variant = plan_variants(r)[0]
    bound = 2 * 16 * SAMPLES + 32
    with ctx.models:
        inputs = inputs_stage(ctx)
        samples = {(variant.sources[0], False): samples_stage(ctx, variant.sources[0], inputs)}
        assert live.peak <= bound and isinstance(samples[(variant.sources[0], False)].value, Rows)
        live.reset()
        verdicts = curate_stage(ctx, variant, inputs, samples)
        assert live.peak <= bound and isinstance(verdicts.value, Rows)
        live.reset()
        summary = curation_summary(variant, verdicts.value, variant_traces(variant, samples).tallies())
        pairs = set_stage(ctx, Step(variant, 1, variant.stages[0]), inputs, verdicts, variant_traces(variant, samples), None)
        assert live.peak <= bound
    assert summary["inputs"] == len(verdicts.value) == INPUTS
    assert summary["per_teacher"][variant.sources[0]]["outputs"] == INPUTS * SAMPLES
    assert 0 < summary["kept"] == len(pairs.value) < INPUTS  # answer-only: one pair per kept input
    assert [p["id"] for p in pairs.value] == [v.example_id for v in verdicts.value if v.kept]


def test_a_program_run_yields_traces_in_order_while_it_runs_and_stops_when_closed():
    started = []

    def program(example, lm):
        started.append(example.id)
        [[completion]] = lm.generate([Request(prompt=example.id)])
        return Trace(example.id, "p", completion.text)

    examples = [Example(f"e{i}", {}) for i in range(400)]
    traces = iter_program(program, examples, FakeLM(responder=lambda r, k: r.prompt), samples=2, workers=4)
    first = [next(traces) for _ in range(3)]
    assert [(t.example_id, t.sample) for t in first] == [("e0", 0), ("e0", 1), ("e1", 0)]
    assert len(started) < 100  # the other programs run as the traces are read, not before
    traces.close()
    ran = len(started)
    assert ran < 100 and len(started) == ran  # closed: no program starts any more


def test_samples_out_of_the_inputs_order_are_an_error_not_a_silent_drop(tmp_path, monkeypatch):
    """The outputs are read in step with the inputs; an artifact in another order cannot be."""
    r = recipe("self_consistency")
    console = Console(quiet=True)
    ctx = RunContext.open(r, RunFolder(tmp_path, console), Models(tmp_path / "cache.sqlite"), console=console,
                          show_progress=False)
    variant = plan_variants(r)[0]
    with ctx.models:
        inputs = inputs_stage(ctx)
        done = samples_stage(ctx, variant.sources[0], inputs)
    rows = list(done.value.rows())
    swapped = type(done)(_ListRows(rows[SAMPLES:] + rows[:SAMPLES]), done.fingerprint)
    grouped = variant_traces(variant, {(variant.sources[0], False): swapped}).by_input(e.id for e in inputs.value)
    with pytest.raises(RunFolderError, match="not in the inputs' order"):
        list(grouped)


class _ListRows:
    """A samples result whose rows are a list (an artifact written in some other order)."""

    path = None

    def __init__(self, rows):
        self._rows = rows

    def rows(self):
        return iter(self._rows)
