"""Curated verdicts -> the student's training pairs (`pairs.py`), TwT's compression (`compress.py`), and the variants and baselines one run trains (`variants.py`)."""

from s2distill._moved import forward_names

__getattr__ = forward_names(__name__, "s2distill.distill.pairs")  # the old module distill
