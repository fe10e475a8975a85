"""The distilled student's prompt: one function builds the program that asks it, and its template is
saved beside the weights so the model can be used after the run exactly as it was trained.

`student_program` is what the pipeline evaluates a distilled student with (its System 1 method,
or the multi-line variant for students taught to reason), and what `predict` and `load_student`
use: the prompt always comes from the same method code, never from a copy of it. The saved
template (`weights/s2distill_prompt.json`) holds the configs that rebuild that program (the task's
and the student method's, whatever options they have) plus the literal prompt text with a
`{question}` placeholder, the stop strings and the token budget, for use outside s2distill
(llama.cpp, Ollama, vLLM); a chat student's is its chat messages instead (`messages`, as
`tokenizer.apply_chat_template` takes them), to be rendered by the model's own chat template. The
literal text is captured by running the program once against a recording LM, so it is whatever the
method sends, by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from s2distill.config.base import dump
from s2distill.methods import build_program
from s2distill.methods.direct import direct
from s2distill.types import Completion, Example, Usage

PROMPT_FILE = "s2distill_prompt.json"
PLACEHOLDER = "{question}"
TEXT_KEY = "_s2distill_question_text"  # an input given as the question's text, not as the task's fields
SPEC_FORMAT = "s2distill-prompt/1"
RAW_USAGE = ("replace the placeholder in `prompt` with the question's text, generate greedily up to `max_tokens`, "
             "cut at the first stop string; the answer follows the prompt's 'A:'")
CHAT_USAGE = ("replace the placeholder in the last user message of `messages` with the question's text, render the "
              "messages with the model's own chat template and its generation prompt (tokenizer.apply_chat_template("
              "messages, add_generation_prompt=True)), generate greedily up to `max_tokens` until the end of the "
              "assistant turn; for a one-line answer, read the reply's first non-empty line")


def student_program(task, method, *, multiline: bool, reasoning_max_tokens: int, task_prefix: str = ""):
    """How a distilled student is asked: its System 1 method; several lines when it was taught to reason;
    after `task_prefix` when it was taught tasks by prefix (Distilling Step-by-Step's "[label] "); in chat
    messages when its method's `prompt_format` is chat (distill/pairs.py trains it on conversational pairs).
    A plain one-line student is its method's own program (`build`: a user's program then runs guarded)."""
    if not multiline and not task_prefix:
        return method.build(task)
    if not multiline:
        options = {**method.factory_options(), **({"task_prefix": task_prefix} if task_prefix else {})}
        return build_program(task, method.name, options)
    return direct(task, shots=method.shots, max_tokens=reasoning_max_tokens, multiline=True, task_prefix=task_prefix,
                  question_suffix=method.question_suffix, prompt_format=method.prompt_format)


class TextQuestion:
    """A task whose question, for an input holding `TEXT_KEY`, is that text as given (`predict
    --text`); everything else (exemplars, answer parsing, stop strings) is the task's own."""

    def __init__(self, task):
        self._task = task

    def __getattr__(self, name: str):
        return getattr(self._task, name)

    def question(self, example: Example) -> str:
        text = example.inputs.get(TEXT_KEY)
        return text if text is not None else self._task.question(example)


class RecordingLM:
    """An LM that records the requests it gets and answers nothing."""

    name = "recorder"

    def __init__(self):
        self.requests = []

    def generate(self, requests):
        self.requests += list(requests)
        return [[Completion("", Usage(), "stop", k) for k in range(r.n)] for r in requests]


def prompt_spec(recipe, task, *, multiline: bool, task_prefix: str = "") -> dict[str, Any]:
    """The saved prompt template of a student trained under `recipe` (see the module docstring)."""
    method = recipe.student.method
    program = student_program(TextQuestion(task), method, multiline=multiline,
                              reasoning_max_tokens=recipe.distill.reasoning_max_tokens, task_prefix=task_prefix)
    recorder = RecordingLM()
    try:
        program(Example("template", {TEXT_KEY: PLACEHOLDER}), recorder)
    except Exception:  # a user's program that cannot run on a bare question: the configs still rebuild it
        pass
    request = recorder.requests[0] if recorder.requests else None
    return {
        "format": SPEC_FORMAT,
        "task": recipe.task.model_dump(mode="json"),
        "data_dir": _resolved_data_dir(recipe.data_dir),
        "student_method": dump(method),  # without settings added since at their defaults: the train spec reads it
        "multiline": multiline,
        "task_prefix": task_prefix,
        "reasoning_max_tokens": recipe.distill.reasoning_max_tokens,
        "student_model": recipe.student.model.model_dump(mode="json"),
        "train_mode": recipe.train.mode,
        "prompt": request.prompt if request else None,
        "messages": [{"role": r, "content": c} for r, c in request.messages] if request and request.messages else None,
        "stop": list(request.stop) if request else [],
        "max_tokens": request.max_tokens if request else None,
        "placeholder": PLACEHOLDER,
        "prompt_format": method.prompt_format,
        "usage": CHAT_USAGE if request and request.messages else RAW_USAGE,
    }


def _resolved_data_dir(explicit: str | None) -> str | None:
    """The data folder the run used, as an absolute path, so the task's exemplars are found again
    from any working directory (None when there is none: a custom task needs none)."""
    from s2distill.paths import data_dir

    try:
        return str(data_dir(explicit).resolve())
    except FileNotFoundError:
        return explicit


def render(spec: dict[str, Any], question: str) -> str:
    """The literal prompt for `question`, from a saved template (for tools outside s2distill)."""
    if spec.get("prompt") is None:
        raise ValueError("this template has no raw prompt (a chat prompt or a user program); use `messages`")
    return spec["prompt"].replace(spec["placeholder"], question)


def plain_chat_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A chat student's saved template when its model has no chat template (the embedded Gemma 3 270M,
    a base model, has none): its `messages` also as the literal prompt the HF backend sends such a model
    (`lm.base.render_messages`, "user: ...\nassistant:") and that its training pairs were rendered as
    (training.trl_pairs.trl_pair), so tools outside s2distill can use it as a raw prompt."""
    from s2distill.lm.base import render_messages

    prompt = render_messages([(m["role"], m["content"]) for m in spec["messages"]])
    return {**spec, "prompt": prompt, "usage": "the model has no chat template: " + RAW_USAGE.replace(
        "the answer follows the prompt's 'A:'", "the answer follows 'assistant:' and ends at the end-of-sequence token")}


def task_from_spec(spec: dict[str, Any]):
    """The task a saved template names, built as the run built it."""
    from s2distill.tasks import TaskConfig, build_task

    config = TypeAdapter(Annotated[TaskConfig, Field(discriminator="name")]).validate_python(spec["task"])
    data_dir = spec.get("data_dir")
    return build_task(config, data_root=Path(data_dir).expanduser() if data_dir else None)


def program_from_spec(spec: dict[str, Any], task):
    """The student's program rebuilt from a saved template: the same code the pipeline evaluates with."""
    from s2distill.methods import method_config

    method = method_config(spec["student_method"], saved=True)  # an earlier version's spec too (`options: {...}`)
    return student_program(TextQuestion(task), method, multiline=spec["multiline"],
                           reasoning_max_tokens=spec["reasoning_max_tokens"], task_prefix=spec.get("task_prefix", ""))
