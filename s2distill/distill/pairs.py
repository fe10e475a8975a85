"""Curated outputs -> the student's training pairs, in TRL's prompt–completion format.

The prompt is always the student's System 1 prompt (few-shot question -> answer), so the
distilled model is trained on exactly what it is evaluated on. The completion depends on the set:

- `answer_only`: the System 2 program's final response with every intermediate call dropped.
  For most methods that is the answer alone; for a method that ends in a response of its own
  (BSM's merged judgement, S2A's answer call) it is that response.
- `label_only`: the answer alone, always (the paper's "label only" BSM variant: the verdict).
- `full_response`: the System 2 program's final response as the model wrote it, its answer
  included and not re-read: the method's own final response (S2A's answer call, BSM's merged
  judgement, a USC composition), else its last call's reply (RaR's answering call). Yu et al.
  2024 train on responses where they say so (Section 3.2: "accept the response that is the
  majority vote"; the distilled RaR models answer in 25-50 tokens, Table 1); the student is asked
  and read as its System 1 method says, which must read whole replies (`direct`'s `response:
  full`), within its own budget.
- `full_reasoning`: the teacher's rationale (program, chain of thought, TwT thinking), then
  "The answer is X." (HaRD stage 1; Standard KD).
- `compressed_reasoning`: the rationale as the teacher rewrote it after seeing the student's
  stage-1 output (HaRD stage 2), then the answer.
- `step_by_step`: Distilling Step-by-Step (Hsieh et al. 2023, TwT Table 1's "Distilling"): label
  prediction and rationale generation as two tasks told apart by task prefixes on the input,
  [label] and [rationale]: per kept output, the prompt after "[label] " with the answer as target,
  and the prompt after "[rationale] " with the rationale alone as target, both in one set (Hsieh et
  al.'s two losses, summed with equal weight). The student is then asked with the label prefix only
  (`evaluated_as`), so it answers without generating a rationale, as in Hsieh et al.'s inference.

Universal self-consistency composes a final answer of its own (Yu et al. 2024, Figure 12); where
a verdict carries it (`Verdict.composed`), it is the answer-only and full-response target of that
input, one pair, whatever the kept outputs; label-only takes its parsed answer.

An answer becomes a target as the task writes it (`Task.target`: the answer itself, or judging's
"[[A]]" under Figure 13's prompt).

A chat student (`student.method.prompt_format: chat`) gets TRL's conversational prompt–completion
pairs instead: the prompt is `direct`'s chat messages ({"role", "content"} dicts: the question as the
user turn, exemplars as earlier turns) and the completion is one assistant message holding the
same target without the few-shot frame's leading space and closing newline, so TRL applies the
model's chat template and keeps the loss on the assistant tokens alone.

One pair per distinct completion among an input's kept outputs (`max_per_input` caps it): under
self-consistency every kept output has the same answer, so answer-only sets have one pair per
input; reasoning sets may hold several rationales for it (TwT keeps two).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from s2distill.curation import output_key
from s2distill.methods import direct_completion, direct_prompt
from s2distill.methods.direct import chat_text, direct_messages
from s2distill.tasks import Task
from s2distill.types import Example, Trace, Verdict

REASONING_FORMATS = ("full_reasoning", "compressed_reasoning")
# Sets whose targets are a whole response: the student is asked by its own method (which reads whole replies)
RESPONSE_FORMATS = ("full_response",)
# Distilling Step-by-Step's task prefixes (Hsieh et al. 2023, multi-task training), before the student's prompt
LABEL_PREFIX = "[label] "
RATIONALE_PREFIX = "[rationale] "


def fold_blank_lines(text: str) -> str:
    """Blank lines folded away: a student's multi-line answer ends at its first blank line
    (`direct`'s MULTILINE_STOP), so no training target may contain one."""
    return re.sub(r"\n\s*\n+", "\n", text.strip())


def rationale_of(trace: Trace) -> str:
    """The reasoning a trace holds: `rationale` when its method records one, else its last
    call's text, with blank lines folded."""
    return fold_blank_lines(trace.rationale or trace.last_output)


def reasoning_completion(rationale: str, answer: str, *, code: bool = False) -> str:
    """Rationale, then the answer: "The answer is X." or, for code, the code itself."""
    return f" {rationale}\n{answer}\n" if code else f" {rationale}\nThe answer is {answer}.\n"


def completion_for(fmt: str, trace: Trace, *, rewritten: str | None = None, code: bool = False,
                   target: Callable[[str], str] = str) -> str:
    """The training completion of one kept output in set `fmt` (`code`: the answer is a program;
    `target`: how an answer is written as a target, `Task.target`)."""
    if fmt == "label_only":
        return direct_completion(target(trace.answer))
    if fmt == "answer_only":
        final = trace.final_response
        return direct_completion(fold_blank_lines(final) if final else target(trace.answer))
    if fmt == "full_response":
        return direct_completion(fold_blank_lines(trace.final_response or trace.last_output or target(trace.answer)))
    if fmt == "full_reasoning":
        return reasoning_completion(rationale_of(trace), trace.answer, code=code)
    if fmt == "step_by_step":
        raise ValueError("step_by_step has two completions per output: see step_by_step_pairs")
    if fmt == "compressed_reasoning":
        if rewritten is None:
            raise ValueError(f"no rewritten rationale for output {output_key(trace)}")
        return reasoning_completion(rewritten, trace.answer, code=code)
    raise ValueError(f"unknown distillation set {fmt!r}")


def student_prompt(task: Task, example: Example, *, shots: int, task_prefix: str = "", question_suffix: str = "",
                   prompt_format: str = "fewshot", context: str = "") -> str | list[dict]:
    """The student's System 1 prompt for `example` as a training pair holds it: `direct`'s raw prompt,
    or (chat) its messages as TRL's conversational {"role", "content"} dicts. `context`: privileged
    text after the question (the soft_labels teacher's prompt: distill/soft.py)."""
    if prompt_format == "chat":
        messages = direct_messages(task, example, shots=shots, task_prefix=task_prefix, question_suffix=question_suffix,
                                   context=context)
        return [{"role": role, "content": content} for role, content in messages]
    return direct_prompt(task, example, shots=shots, task_prefix=task_prefix, question_suffix=question_suffix,
                         context=context)


def student_completion(completion: str, prompt_format: str = "fewshot") -> str | list[dict]:
    """A few-shot completion as a pair of `prompt_format` holds it: as it is, or (chat) one assistant
    message with the text stripped (the chat template ends the turn, not a newline)."""
    if prompt_format == "chat":
        return [{"role": "assistant", "content": completion.strip()}]
    return completion


def pair_text(value: str | list[dict]) -> str:
    """A pair's prompt or completion as text: a string as it is, chat messages as `chat_text` writes them."""
    return value if isinstance(value, str) else chat_text(value)


def kept_traces(verdicts: Sequence[Verdict], traces: Mapping[tuple[str, str, int], Trace]) -> dict[str, list[Trace]]:
    """Each kept input's kept outputs, as traces."""
    return {
        v.example_id: [traces[(v.example_id, ref.teacher, ref.sample)] for ref in v.kept_outputs]
        for v in verdicts if v.kept
    }


def distill_pairs(
    fmt: str,
    task: Task,
    examples: Sequence[Example],
    verdicts: Sequence[Verdict],
    traces: Mapping[tuple[str, str, int], Trace],
    *,
    shots: int,
    max_per_input: int | None = None,
    rewritten: Mapping[tuple[str, str, int], str] | None = None,
    question_suffix: str = "",
    prompt_format: str = "fewshot",
) -> list[dict]:
    """The training pairs of set `fmt`: {"id", "teacher", "sample", "prompt", "completion"}
    (`question_suffix`: the student's, after each question, as `direct` asks it; `prompt_format`:
    the student's, chat pairs in TRL's conversational format)."""
    kept = kept_traces(verdicts, traces)
    return list(pairs_of_verdicts(fmt, task, examples, ((v, kept[v.example_id]) for v in verdicts if v.kept), shots=shots,
                                  max_per_input=max_per_input, rewritten=rewritten, question_suffix=question_suffix,
                                  prompt_format=prompt_format))


def pairs_of_verdicts(fmt: str, task: Task, examples: Iterable[Example],
                      verdicts_with_kept: Iterable[tuple[Verdict, Sequence[Trace]]], **settings) -> Iterator[dict]:
    """The pairs of set `fmt` for each kept verdict, given with its kept outputs, one input at a time
    (the set stage reads both back from their artifacts; `distill_pairs` has them in memory).
    `settings`: `input_pairs`' keyword arguments."""
    by_id = {e.id: e for e in examples}
    for verdict, kept in verdicts_with_kept:
        if verdict.kept:
            yield from input_pairs(fmt, task, by_id[verdict.example_id], verdict, kept, **settings)


def input_pairs(
    fmt: str,
    task: Task,
    example: Example,
    verdict: Verdict,
    kept: Sequence[Trace],
    *,
    shots: int,
    max_per_input: int | None = None,
    rewritten: Mapping[tuple[str, str, int], str] | None = None,
    question_suffix: str = "",
    prompt_format: str = "fewshot",
) -> list[dict]:
    """One kept input's pairs of set `fmt` (`distill_pairs`), from its verdict and kept outputs: a
    stage builds them input by input as it reads the samples back. Only the verdict's kept outputs
    are read, and an output cut at its budget is never a target: curation keeps none
    (curation/truncation.py), and one in a verdict made otherwise is passed over here."""
    example_id = example.id
    kept = [trace for trace in kept if not trace.truncated]
    prompt = student_prompt(task, example, shots=shots, question_suffix=question_suffix, prompt_format=prompt_format)
    if verdict.composed and fmt in ("answer_only", "label_only", "full_response"):
        target = fold_blank_lines(verdict.composed) if fmt != "label_only" else task.target(verdict.answer)
        return [{"id": example_id, "teacher": "usc", "sample": -1, "prompt": prompt,
                 "completion": student_completion(direct_completion(target), prompt_format)}]
    if fmt == "step_by_step":
        return step_by_step_pairs(task, example, kept, shots=shots, max_per_input=max_per_input,
                                  question_suffix=question_suffix, prompt_format=prompt_format)
    pairs: list[dict] = []
    seen: set[str] = set()
    for trace in kept:
        completion = completion_for(fmt, trace, rewritten=(rewritten or {}).get(output_key(trace)),
                                    code=task.multiline_answers, target=task.target)
        if completion in seen:
            continue
        seen.add(completion)
        pairs.append({"id": example_id, "teacher": trace.teacher, "sample": trace.sample,
                      "prompt": prompt, "completion": student_completion(completion, prompt_format)})
        if max_per_input and len(seen) >= max_per_input:
            break
    return pairs


def step_by_step_pairs(task: Task, example: Example, kept: Sequence[Trace], *, shots: int,
                       max_per_input: int | None = None, question_suffix: str = "",
                       prompt_format: str = "fewshot") -> list[dict]:
    """Distilling Step-by-Step's two tasks for one input: a "[label] " pair (the answer) and a
    "[rationale] " pair (the rationale alone) per kept output, each distinct completion once
    (`max_per_input` caps the outputs used); pairs say their `task`."""
    pairs, seen = [], set()
    for trace in kept[:max_per_input] if max_per_input else kept:
        for name, prefix, completion in (("label", LABEL_PREFIX, direct_completion(task.target(trace.answer))),
                                         ("rationale", RATIONALE_PREFIX, f" {rationale_of(trace)}\n")):
            if (name, completion) in seen:
                continue
            seen.add((name, completion))
            pairs.append({"id": example.id, "teacher": trace.teacher, "sample": trace.sample, "task": name,
                          "prompt": student_prompt(task, example, shots=shots, task_prefix=prefix,
                                                   question_suffix=question_suffix, prompt_format=prompt_format),
                          "completion": student_completion(completion, prompt_format)})
    return pairs


def evaluated_as(pairs: Sequence[dict]) -> tuple[bool, str]:
    """How a student trained on `pairs` is asked: (several lines?, task prefix). A Distilling
    Step-by-Step student is asked with the label prefix and answers as its label pairs taught it;
    any other student answers as all its pairs taught it, with no prefix."""
    labels = [p for p in pairs if p.get("task") == "label"]
    if labels:
        return answers_on_several_lines(labels), LABEL_PREFIX
    return answers_on_several_lines(pairs), ""


def answers_on_several_lines(pairs: Sequence[dict]) -> bool:
    """Whether a set teaches the student to write more than one line before it stops."""
    return any("\n" in pair_text(p["completion"]).strip() for p in pairs)
