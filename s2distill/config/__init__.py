"""Recipes: typed sections (`recipe.py`), the strict base and runtime fields (`base.py`), where model calls execute (`generation.py`)."""

from s2distill._moved import forward_names

__getattr__ = forward_names(__name__, "s2distill.config.recipe")  # the old module config
