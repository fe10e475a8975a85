"""s2distill: System 2 distillation of language models.

Run a System 2 program (chain-of-thought, program-aided reasoning, ...) over unlabeled inputs,
keep what passes a label-free check, and fine-tune a model to give those answers directly.
"""

__version__ = "0.1.0"
