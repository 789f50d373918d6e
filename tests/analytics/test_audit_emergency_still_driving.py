"""A preemption called by an emergency vehicle still driving when the run ended is explained by that vehicle.

SUMO writes `arrival -1` for a vehicle that has not arrived; read as an arrival at -1 s, the vehicle seemed gone
before it departed, and the audit called its preemption one with no emergency vehicle in the network.
"""

from __future__ import annotations

import csv
import json
import math

from signalwise.analytics.safety_audit import _emergency_vehicles


def test_a_vehicle_sumo_writes_as_arriving_at_minus_one_is_still_driving(tmp_path):
    (tmp_path / "vtype_classes.json").write_text(json.dumps({"ev": "emergency", "car": "passenger"}))
    with open(tmp_path / "trips.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["vehicle_id", "vtype", "depart_s", "arrival_s"])
        w.writeheader()
        w.writerow({"vehicle_id": "e1", "vtype": "ev", "depart_s": "300.0", "arrival_s": "-1.0"})
        w.writerow({"vehicle_id": "e2", "vtype": "ev", "depart_s": "10.0", "arrival_s": "95.0"})
        w.writerow({"vehicle_id": "c1", "vtype": "car", "depart_s": "5.0", "arrival_s": "-1.0"})
    spans = sorted(_emergency_vehicles(tmp_path))
    assert spans == [(10.0, 95.0), (300.0, math.inf)]
