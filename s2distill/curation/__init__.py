"""Label-free curation filters: each returns one `Verdict` (kept or dropped, and why) per input."""

from s2distill.curation.dual_criteria import dual_criteria, most_diverse_pair
from s2distill.curation.perturbation import map_back_swapped_verdict, perturbation_agreement
from s2distill.curation.self_consistency import self_consistency

__all__ = ["dual_criteria", "map_back_swapped_verdict", "most_diverse_pair", "perturbation_agreement", "self_consistency"]
