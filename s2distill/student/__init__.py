"""The distilled student: its prompt (`prompt.py`), `predict`, `export` and GGUF."""

from s2distill._moved import forward_names

__getattr__ = forward_names(__name__, "s2distill.student.prompt")  # the old module student
