"""Scores on the test split (`score.py`), agreement with System 2 where data has no labels, the one vote over sampled answers, MT-bench pairs."""
