"""Self-contained HTML QC reports (per subject and per cohort).

Figures are drawn with matplotlib's Agg canvas and embedded as base64 PNG; CSS
and the small table-sorting script are inline, and a Content-Security-Policy
forbids any network access, so each HTML file opens anywhere, offline. Every
string taken from input files is HTML-escaped.
"""

from .cohort import cohort_report, robust_z
from .subject import subject_report, subject_summary, whitened_gfp

__all__ = ["subject_report", "subject_summary", "cohort_report", "robust_z", "whitened_gfp"]
