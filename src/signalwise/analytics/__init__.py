"""Analytics: statistics, comparisons, safety audit, ATSPM measures."""

from .stats import Comparison, MeanCI, compare, mean_ci, welch_p_value

__all__ = ["Comparison", "MeanCI", "compare", "mean_ci", "welch_p_value"]
