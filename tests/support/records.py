"""The smallest valid interval record of the ingestion format, for tests that need a row in the store."""

from __future__ import annotations


def one_record(simulation_id: str = "S", timestamp: str = "2025-01-06T07:00:00Z", intersection_id: str = "I") -> dict:
    """One intersection, one approach, one car."""
    return {"simulation_id": simulation_id, "timestamp": timestamp, "intersection_id": intersection_id,
            "signals": [{"direction": "north", "vehicle_counts": {"car": 1}, "emergency_vehicle_present": False,
                         "signal_status": "GREEN", "signal_timer": 1, "vehicles_crossed": 1, "avg_wait_time": 1.0,
                         "green_time_allocated": 20}],
            "metrics": {"total_vehicles_passed": 1, "avg_wait_time_all_sides": 1.0, "throughput": 0.5,
                        "avg_speed": 20.0, "fuel_saved": 0.0, "co2_saved": 0.0, "emergency_overrides": 0}}
