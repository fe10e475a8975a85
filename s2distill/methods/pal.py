"""Program-aided reasoning (Gao et al. 2023, PAL): the model writes a short Python program, few-shot,
and running it gives the answer.

The program runs in the sandbox (`s2distill/sandbox.py`: bubblewrap namespaces, time, memory and
output limits, no network, no view of the run folder). A program that fails, hangs, or prints
nothing usable is an unparseable answer with the reason recorded, never a crash. On the embedded Gemma 3 270M this is the strong
System 2: it follows code patterns far better than free-text reasoning.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any, Literal

from pydantic import Field, model_validator

from s2distill.methods.calls import ask
from s2distill.methods.registry import MethodConfigBase, register
from s2distill.sandbox import SandboxPolicy, SandboxResult, run_python
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

SHOT = "# Q: {question}\n{program}\n\n"
QUERY = "# Q: {question}\n"
STOP = ("\n\n", "\n# Q:")


def pal(task: Task, *, shots: int = 4, max_tokens: int = 96, timeout: float = 5.0, memory_mb: int = 512):
    """Build the program-aided program for `task`."""
    prefix = "".join(SHOT.format(question=s.question, program=s.program) for s in task.shots[:shots])

    def program(example: Example, lm) -> Trace:
        prompt = prefix + QUERY.format(question=task.question(example))
        calls: list[Call] = []
        code = ask(lm, prompt, calls=calls, name="program", prompt_format="fewshot", max_tokens=max_tokens,
                   stop=STOP).text
        result = run_once(code, timeout=timeout, memory_mb=memory_mb, policy=task.sandbox)
        printed = [line for line in result.stdout.splitlines() if line.strip()]
        answer = task.parse_answer(printed[-1]) if result.ok and printed else None
        if not result.ok:
            error = f"program failed: {result.error}"
        elif answer is None:
            error = f"unparseable program output: {result.stdout[:80]!r}"
        else:
            error = None
        return Trace(
            example.id, "pal", answer, calls, error=error,
            meta={"stdout": result.stdout[:500]}, rationale=code.strip(),
        )

    return program


class PALConfig(MethodConfigBase):
    """Program-aided reasoning: the model writes a program (few-shot prompts only), the sandbox runs it."""

    name: Literal["pal"] = "pal"
    shots: int = Field(4, ge=0, le=64, description="solved exemplars (question and program) before the question")
    max_tokens: int | None = Field(None, ge=1, le=1_000_000, description="the program's budget (default: 96)")
    timeout: float = Field(5.0, gt=0.0, le=3600.0, description="seconds a program may run in the sandbox")
    memory_mb: int = Field(512, ge=16, le=1_048_576, description="memory a program may use in the sandbox, in MiB")

    @model_validator(mode="before")
    @classmethod
    def _fewshot_only(cls, data: Any) -> Any:
        """PAL's prompts are few-shot code: `prompt_format: fewshot` says so, `chat` is an error."""
        if isinstance(data, dict) and "prompt_format" in data:
            if data["prompt_format"] != "fewshot":
                raise ValueError(f"method 'pal' has only the fewshot prompt format, got prompt_format: "
                                 f"{data['prompt_format']!r}")
            data = {k: v for k, v in data.items() if k != "prompt_format"}
        return data

    @property
    def prompt_format(self) -> str:
        return "fewshot"

    @property
    def question_suffix(self) -> str:
        return ""

    @property
    def runs_model_code(self) -> bool:
        return True


register(PALConfig, pal, "System 2: the model writes a Python program (few-shot); running it in the sandbox gives the "
         "answer")


# Samples of one input mostly write the same program (1,134 sampled quickstart programs held 431
# distinct texts), and starting a sandboxed interpreter costs more CPU than decoding a short program
# on the embedded model. A program whose output cannot change between runs is run once per process.
_NONDETERMINISTIC = re.compile(r"\b(random|time|datetime|uuid|secrets|urandom|hash|id|input|open|os|sys)\b")
_MEMO_SIZE = 4096
_memo: OrderedDict[tuple[str, float, int, str], SandboxResult] = OrderedDict()
_memo_lock = threading.Lock()


def run_once(code: str, *, timeout: float, memory_mb: int, policy: SandboxPolicy | None = None) -> SandboxResult:
    """`run_python`, remembered by program text when the program is deterministic (no randomness,
    clock, object identity, files, input or environment): identical programs give identical output.
    A program that timed out is never remembered (the next run may be on a less loaded machine)."""
    if _NONDETERMINISTIC.search(code):
        return run_python(code, timeout=timeout, memory_mb=memory_mb, policy=policy)
    key = (code, timeout, memory_mb, repr(policy))
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            return _memo[key]
    result = run_python(code, timeout=timeout, memory_mb=memory_mb, policy=policy)
    if not result.timed_out:
        with _memo_lock:
            _memo[key] = result
            if len(_memo) > _MEMO_SIZE:
                _memo.popitem(last=False)
    return result
