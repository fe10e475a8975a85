"""Supervised fine-tuning of the student over TRL and PEFT (`sft.py`): the pairs as TRL reads them, guards, multi-process launch, the loss log, answer tokens."""
