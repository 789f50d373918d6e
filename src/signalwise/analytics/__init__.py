"""Analytics: statistics, comparisons, safety audit, ATSPM measures."""

from .safety_audit import AuditInputError, AuditReport, Violation, audit, audit_run
from .stats import Comparison, MeanCI, compare, mean_ci, paired_p_value, welch_p_value

__all__ = ["Comparison", "MeanCI", "compare", "mean_ci", "paired_p_value", "welch_p_value",
           "AuditInputError", "AuditReport", "Violation", "audit", "audit_run"]
