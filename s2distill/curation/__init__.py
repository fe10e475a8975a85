"""Label-free curation filters: each returns one `Verdict` (kept or dropped, and why) per input."""

from s2distill.curation.self_consistency import self_consistency

__all__ = ["self_consistency"]
