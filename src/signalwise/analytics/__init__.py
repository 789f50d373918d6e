"""Analytics: statistics, comparisons, safety audit, ATSPM measures.

Names are loaded on first use: `signalwise atspm` imports `analytics.atspm`, which
must not pay for the audit and its configuration models (pydantic) it never runs.
"""

import importlib

_HOMES = {
    **dict.fromkeys(("AuditInputError", "AuditReport", "Violation", "audit", "audit_run"), ".safety_audit"),
    **dict.fromkeys(("Comparison", "MeanCI", "compare", "mean_ci", "paired_p_value", "welch_p_value"), ".stats"),
}

__all__ = ["Comparison", "MeanCI", "compare", "mean_ci", "paired_p_value", "welch_p_value",
           "AuditInputError", "AuditReport", "Violation", "audit", "audit_run"]


def __getattr__(name: str):  # noqa: ANN202
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
