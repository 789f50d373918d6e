"""Analytics: statistics, comparisons, safety audit, ATSPM measures.

Names are loaded on first use: `signalwise atspm` imports `analytics.atspm`, which
must not pay for the audit and its configuration models (pydantic) it never runs.
"""

from signalwise._lazy import lazy_names

_HOMES = {
    **dict.fromkeys(("AuditInputError", "AuditReport", "Violation", "audit", "audit_run"), ".safety_audit"),
    **dict.fromkeys(("Comparison", "MeanCI", "compare", "mean_ci", "paired_p_value", "welch_p_value"), ".stats"),
}

__all__ = ["Comparison", "MeanCI", "compare", "mean_ci", "paired_p_value", "welch_p_value",
           "AuditInputError", "AuditReport", "Violation", "audit", "audit_run"]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
