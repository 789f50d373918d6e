"""Grade a vision pipeline's output against a rendered simulation's exact truth.

Reads the files on both sides (`signalwise vision render` writes the truth,
`signalwise vision run` the pipeline's output) and computes detection recall
and precision, MOTA / IDF1 / HOTA, speed error, stop-line counts and
violation precision and recall.
"""

from .counts import grade_counts
from .detection import DetectionGrade, grade_detections
from .files import GradingInputError, read_pipeline, read_truth
from .report import Target, grade_run, report_json, targets
from .speed import SpeedGrade, grade_speed
from .tracking import FramePairs, TrackingGrade, clear_mot, frame_pairs, grade_tracking, hota
from .violations import ViolationGrade, grade_violations

__all__ = ["DetectionGrade", "FramePairs", "GradingInputError", "SpeedGrade", "Target", "TrackingGrade",
           "ViolationGrade", "clear_mot", "frame_pairs", "grade_counts", "grade_detections", "grade_run",
           "grade_speed", "grade_tracking", "grade_violations", "hota", "read_pipeline", "read_truth", "report_json",
           "targets"]
