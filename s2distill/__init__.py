"""s2distill: System 2 distillation of language models.

Run a System 2 program (chain-of-thought, program-aided reasoning, ...) over unlabeled inputs,
keep what passes a label-free check, and fine-tune a model to give those answers directly.
"""

__version__ = "0.1.0"

from s2distill import _moved

_moved.install()  # modules that moved into rooms (cli/, training/, ...) keep their old import paths


def __getattr__(name: str):
    """`s2distill.run`, `s2distill.load_student`, `s2distill.load_cascade`, `s2distill.Report`: the Python API (s2distill/api.py),
    imported on first use so that `import s2distill` stays light."""
    if name in ("run", "load_student", "load_cascade", "Report", "Student", "Cascade"):
        from s2distill import api

        return getattr(api, name)
    raise AttributeError(f"module 's2distill' has no attribute {name!r}")
