"""System 1 and System 2 methods, and the registry recipes name them by.

A method is a factory `(task, **options) -> program`, and a program is a plain function
`(example, lm) -> Trace` (DESIGN principle 3): no base class to inherit.
"""

from __future__ import annotations

from collections.abc import Callable

from s2distill.methods.cot import cot
from s2distill.methods.direct import direct, direct_completion, direct_prompt
from s2distill.methods.pal import pal
from s2distill.methods.runner import Program, run_program

METHODS: dict[str, tuple[Callable[..., Program], str]] = {
    "direct": (direct, "System 1: few-shot question -> answer, no reasoning"),
    "cot": (cot, "System 2: few-shot chain-of-thought ending in 'The answer is X.'"),
    "pal": (pal, "System 2: the model writes a Python program (few-shot); running it in the sandbox gives the answer"),
}

__all__ = ["METHODS", "Program", "direct_completion", "direct_prompt", "run_program"]
