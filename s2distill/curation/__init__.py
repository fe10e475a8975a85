"""Label-free curation filters: each returns one `Verdict` (kept or dropped, and why) per input,
and names in `kept_outputs` the outputs (`OutputRef`: teacher, sample) it keeps."""

from s2distill.curation.dual_criteria import dual_criteria, most_diverse_pair
from s2distill.curation.no_filter import no_filter
from s2distill.curation.outputs import output_key, output_refs, teacher_of
from s2distill.curation.perturbation import perturbation_agreement, perturbation_consistency
from s2distill.curation.self_consistency import self_consistency
from s2distill.curation.usc import usc_filter

__all__ = [
    "dual_criteria", "most_diverse_pair", "no_filter", "output_key", "output_refs",
    "perturbation_agreement", "perturbation_consistency", "self_consistency", "teacher_of",
    "usc_filter",
]
