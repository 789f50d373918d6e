"""ATSPM performance measures from the hi-res event log (Indiana enumeration).

    from signalwise.analytics.atspm import read_event_log, read_detectors, compute_all
    results = compute_all(read_event_log("events.csv"), read_detectors("detectors.csv"))
    results.tables["split_failures"]

Measures follow the PyPI `atspm` package (ODOT, 2.6.1) definitions exactly
for actuations, arrivals on green, platoon ratio, split failures (by
approach), yellow/red actuations, terminations and pedestrian
services/actuations; `tests/atspm/test_agreement.py` checks it bin for bin on
our SUMO run logs and on hand-made edge cases. The kernels are numpy (sort
once, cumulative passes) instead of DuckDB window functions.

Intentional differences from the atspm package
----------------------------------------------
1. Arrivals on green / platoon ratio: bins where arrivals happened but none on
   green are reported as 0 % (atspm drops those bins, so its hourly roll-ups
   over-state AOG).
2. Advance-detector arrivals are projected to the stop bar by
   DistanceToStopbar_m / ApproachSpeed_mps when the configuration gives them
   (`project=True`, the CLI default; `--no-project` or configurations without
   those columns give atspm's numbers). atspm only shifts by a fixed latency.
   An arrival projected past the device's last event is left out.
3. Yellow/red actuations are binned with the requested bin size; atspm always
   uses 15 minutes for that table whatever its bin_size.
4. Split failures by lane (by_approach=False): atspm 2.6.1 returns no rows
   (its phase events carry Detector 0 into a natural join on Detector); we
   compute them. By approach (the default) agrees.
5. Detector on/off repair in split failures orders events at the same
   instant OFF before ON, and repairs each (detector, phase) stream apart;
   atspm orders same-instant events arbitrarily and interleaves the copies of
   a detector assigned to two phases.
6. Input: exact duplicates, rows out of time order, codes outside 0-255 and
   device silences over 5 minutes are counted and reported (atspm drops
   duplicates silently). Timestamps are kept to the microsecond as atspm does.
7. Platoon ratio: g/C over the part of each bin the device's log covers, an
   open green ending at the device's last event (atspm: the whole bin, the
   open green to the bin's end); bins covered whole agree.
8. Arrivals on green / platoon ratio count arrivals in complete cycles only
   (begin red to begin red, UDOT ATSPM's rule); atspm counts those before a
   phase's first begin green as not on green, and those in the open cycle.
9. Split failures read a detector as off before its first event (UDOT
   ATSPM's reading); atspm leaves the cycles before it out.
10. Extra measures atspm does not have in this form: red-light running from
   stop-bar on/off pairs (`red_light_running`), phase wait from detector
   calls when the log has no phase-call (43) events, split monitor, PCD,
   preemption details. Pedestrian delay follows UDOT ATSPM's PedPhase; `rule="udot"` judges split
   failures by UDOT's threshold and bin time (docs/atspm.md, "Differences from UDOT ATSPM").
11. Per-plan statistics (`plans`, `plan_summary`): split failures, arrivals on green and pedestrian
   delay per coordination plan (event 131) span and phase, as UDOT ATSPM reports them by plan; the
   plan spans alone are `plan_spans` (module `plans`).
12. Pedestrian actuations and delays put a push-button event (89/90) on the phase its channel's
   `Pedestrian` configuration row gives, on a device that has such rows (its other channels are left
   out, with a warning); atspm takes the channel as the phase, as we do on a device without them.
13. A cycle, split or wait across a data gap (a device silent over 5 minutes) or a controller interruption
   (power failure 182/184, flash 173, a restart: module `interruptions`) is left out of the cycle-based
   measures, with a warning, and binned tables mark the bins a gap or interruption touches (`Complete`,
   module `gaps`); a green ends at an interruption. atspm measures it as logged. The bins the log starts
   and ends inside are marked the same way, and no bin starts at or after the log's end.
14. A chattering detector (more than 10 pulses under 0.15 s in 10 s on one channel) is named, and its events in
   the chattering period are left out of every measure (module `detector_health`); atspm counts them. A
   stuck-on detector (on through 3 greens of its phase, or 15 minutes) is named, and the split-failure
   cycles it overlaps are left out; atspm counts them as failures.
15. `Percent_AOG` (arrivals on green, platoon ratio, plans) is a percent, 0-100, as UDOT ATSPM's Percent
   Arrivals on Green, in float64 from the counts (`measures.percent_aog`); atspm's is a fraction in float32.
16. Split-failure occupancies are fractions (0-1) as atspm's, given to 4 decimals (`measures.OCCUPANCY_DECIMALS`)
   without atspm's float32 noise; a cycle's failure is judged before rounding.
17. Per approach (module `measures`: `arrival_on_green_by_approach`, `approach_volume`): arrivals on green,
   platoon ratio and approach volume per detector approach (the configuration's `Approach`, else its `Lane`'s
   edge), as UDOT ATSPM measures the PCD and arrivals on green per approach; atspm has them per phase only.
18. Approach delay (module `approach_delay`), which atspm does not have: UDOT ATSPM's, each PCD arrival before its
   cycle's begin green delayed until it, binned by the cycle's begin red.
"""

from .compute import MEASURES, Results, compute_all, write_tables
from .inputs import (
    DetectorConfig,
    EventLog,
    EventLogError,
    InputReport,
    detectors_from_frame,
    events_from_arrow,
    events_from_frame,
    events_from_rows,
    read_detectors,
    read_event_log,
    with_stopbar_yellow_red,
)
from .plans import plan_spans, plan_summary

__all__ = [
    "MEASURES", "DetectorConfig", "EventLog", "EventLogError", "InputReport", "Results", "compute_all",
    "detectors_from_frame", "events_from_arrow", "events_from_frame", "events_from_rows", "plan_spans",
    "plan_summary", "read_detectors", "read_event_log", "with_stopbar_yellow_red", "write_tables",
]
