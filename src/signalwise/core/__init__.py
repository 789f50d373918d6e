"""Core types, units and timing formulas: imported by every other package."""

from .eventlog import COLUMNS as EVENT_LOG_COLUMNS
from .eventlog import DEFAULT_START, format_timestamp, parse_timestamp, read_events, write_events
from .health import detector_fault, lanes_fault
from .timing import WebsterPlan, ite_all_red_s, ite_yellow_s, ped_clearance_s, webster_plan
from .types import (
    Crosswalk,
    Decision,
    Detector,
    EmergencyApproach,
    EventCode,
    Intersection,
    Intervention,
    LaneState,
    Movement,
    Observation,
    ObservationNeed,
    Phase,
    SignalEvent,
    SignalStatus,
    SourceHealth,
    Timing,
)

__all__ = [
    "Crosswalk", "Decision", "Detector", "EmergencyApproach", "EventCode", "Intersection",
    "Intervention", "LaneState", "Movement", "Observation", "ObservationNeed", "Phase", "SignalEvent", "SignalStatus", "SourceHealth", "Timing",
    "detector_fault", "lanes_fault", "WebsterPlan", "ite_all_red_s", "ite_yellow_s", "ped_clearance_s", "webster_plan",
    "EVENT_LOG_COLUMNS", "DEFAULT_START", "format_timestamp", "parse_timestamp", "read_events",
    "write_events",
]
