"""System 1 and System 2 methods, and the registry recipes name them by.

A method is a factory `(task, **options) -> program`, and a program is a plain function
`(example, lm) -> Trace` (DESIGN principle 3): no base class to inherit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from s2distill.methods.bsm import bsm
from s2distill.methods.cot import cot
from s2distill.methods.direct import direct, direct_completion, direct_prompt
from s2distill.methods.pal import pal
from s2distill.methods.rar import rar
from s2distill.methods.runner import Program, run_program
from s2distill.methods.s2a import s2a
from s2distill.methods.twt import twt_teacher
from s2distill.methods.usc import usc
from s2distill.methods.user import load_user_program

METHODS: dict[str, tuple[Callable[..., Program], str]] = {
    "direct": (direct, "System 1: question -> answer, no reasoning; few-shot Q:/A: prompt, or the bare question as a chat user turn"),
    "cot": (cot, "System 2: chain-of-thought (Yu et al. Figure 10), ending in 'Final answer: X'; few-shot or zero-shot"),
    "pal": (pal, "System 2: the model writes a Python program (few-shot); running it in the sandbox gives the answer"),
    "rar": (rar, "System 2: Rephrase and Respond, 1-step (steps: 1) or 2-step (rephrase, then answer)"),
    "s2a": (s2a, "System 2: System 2 Attention: extract unbiased context and question, answer from them alone"),
    "bsm": (bsm, "System 2: Branch-Solve-Merge pairwise judging: criteria, a score per criterion, a merged [[A]]/[[B]]/[[C]] verdict"),
    "twt": (twt_teacher, "System 2: TwT teacher: reasoning, answer and a self-reported confidence 'score: 0.xx'"),
    "usc": (usc, "System 2: universal self-consistency: N samples of a base method, the model composes the FINAL answer"),
}


def method_parameters(name: str):
    """The keyword parameters a registered method's factory accepts."""
    return inspect.signature(METHODS[name][0]).parameters


def factory_options(name: str, *, shots: int, max_tokens: int | None = None, prompt_format: str = "fewshot",
                    options: dict | None = None) -> dict:
    """Keyword arguments for a registered method's factory; `prompt_format` goes only to methods
    that have more than the few-shot format."""
    kwargs = {"shots": shots, **(options or {})}
    if max_tokens:
        kwargs["max_tokens"] = max_tokens
    if "prompt_format" in method_parameters(name):
        kwargs["prompt_format"] = prompt_format
    return kwargs


def build_program(task, name: str, options: dict) -> Program:
    """The program a recipe's method names: a registered method, or a user's `module:function`."""
    if ":" in name:
        if options:
            raise ValueError(f"user program {name!r} takes no options, got {sorted(options)}")
        return load_user_program(name)
    factory, _ = METHODS[name]
    return factory(task, **options)


__all__ = ["METHODS", "Program", "build_program", "direct_completion", "direct_prompt", "factory_options", "method_parameters", "run_program"]
