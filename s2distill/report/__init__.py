"""The report: its rows (`row.py`), report.md and report.json (`summary.py`), report.html (`html.py`), its plot, provenance and cost, and the headless-browser check."""

from s2distill._moved import forward_names

__getattr__ = forward_names(__name__, "s2distill.report.summary")  # the old module report
