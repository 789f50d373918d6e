"""One rule each, in `analytics.coordination_patterns`, for what the API's stored and live charts and the ATSPM
command read of a live run's 131s: the plan in force with timing revisions passed over (`last_pattern`) and the
devices a run's signal model lists revisions for (`read_revision_devices`); and the 131/132 codes and pattern
numbers defined once, in `core` (found in review: each was written in two to four places).
"""

from __future__ import annotations

import json
import subprocess
import sys

from signalwise.analytics.atspm import plans
from signalwise.analytics.coordination_patterns import last_pattern, read_revision_devices
from signalwise.control import coordinated
from signalwise.core import types


def test_the_plan_in_force_passes_over_timing_revisions():
    events = [(0, 131, 1), (0, 132, 90), (0, 133, 10),  # the program's plan
              (40, 131, 2),  # a timing revision alone
              (80, 132, 0), (80, 131, 1), (80, 131, 254),  # Free, with a replayed revision 1 at its instant
              (120, 131, 3)]  # another revision
    assert events[last_pattern(events)] == (80, 131, 254)
    assert events[last_pattern(events[:4])] == (0, 131, 1)
    assert last_pattern([(5, 131, 2), (9, 131, 3)]) is None  # revisions only: no plan known


def test_a_runs_revision_devices_or_why_they_cannot_be_read(tmp_path):
    path = tmp_path / "signal_model.json"
    path.write_text(json.dumps([{"id": "A", "timing_revisions": [{"yellow_s": [4.0]}]}, {"id": "B"},
                                {"id": "C", "timing_revisions": []}]))
    assert read_revision_devices(path) == (frozenset({"A"}), None)
    path.write_text('[{"id": "A", "timing_rev')  # not JSON
    assert read_revision_devices(path) == (frozenset(), "JSONDecodeError")
    assert read_revision_devices(tmp_path / "none.json") == (frozenset(), "No such file or directory")


def test_the_codes_and_pattern_numbers_are_cores():
    assert (coordinated.COORDINATED_PATTERN, coordinated.FREE_PATTERN) == (types.COORDINATED_PATTERN,
                                                                           types.FREE_PATTERN) == (1, 254)
    assert coordinated.FREE[0] == types.FREE_PATTERN
    assert plans.PLAN_NAMES == {types.FREE_PATTERN: "Free", types.FLASH_PATTERN: "Flash"}
    assert (plans.PLAN_EVENT, plans.CYCLE_EVENT, plans.OFFSET_EVENT, plans.EXTRA_CYCLE_EVENT) == (
        types.EventCode.TIMING_PLAN_CHANGE, types.EventCode.CYCLE_LENGTH_CHANGE,
        types.EventCode.OFFSET_LENGTH_CHANGE, types.EventCode.ADDITIONAL_CYCLE_LENGTH_CHANGE)
    # analytics reads them from core, never from control
    code = ("import sys, signalwise.analytics.coordination_patterns, signalwise.analytics.atspm.plans, "
            "signalwise.analytics.safety_audit; print(sorted(m for m in sys.modules if m.startswith('signalwise.control')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
