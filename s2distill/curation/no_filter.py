"""No filter: every output with a parseable answer is kept. The ablation of the System 2
distillation paper (distillation without self-consistency) and the Standard KD baseline."""

from __future__ import annotations

from collections.abc import Sequence

from s2distill.curation.outputs import output_refs
from s2distill.types import Trace, Verdict


def no_filter(traces_by_input: dict[str, Sequence[Trace]]) -> list[Verdict]:
    verdicts = []
    for example_id, traces in traces_by_input.items():
        parsed = [t for t in traces if t.answer is not None]
        if not parsed:
            verdicts.append(Verdict(example_id, False, f"no parseable answer in {len(traces)} outputs", None, "none"))
            continue
        reason = f"no filter: {len(parsed)} of {len(traces)} outputs parse"
        verdicts.append(Verdict(example_id, True, reason, parsed[0].answer, "none",
                                kept_outputs=output_refs(parsed)))
    return verdicts
