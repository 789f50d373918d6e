"""Random but valid ingestion records, for tests that check answers against what was sent."""

import random

DIRECTIONS = ("north", "south", "east", "west")


def random_record(rng: random.Random, sim: str, inter: str, timestamp: str, dirs) -> dict:
    """One record of `sim`/`inter` at `timestamp` (ISO with zone) with a signal per direction in `dirs`."""
    return {
        "simulation_id": sim, "intersection_id": inter, "timestamp": timestamp,
        "signals": [{"direction": d, "vehicle_counts": {"car": rng.randrange(40)},
                     "emergency_vehicle_present": rng.random() < 0.3, "signal_status": "GREEN",
                     "signal_timer": 3, "vehicles_crossed": rng.randrange(20),
                     "avg_wait_time": round(rng.uniform(1, 80), 2), "green_time_allocated": 15}
                    for d in dirs],
        "metrics": {"total_vehicles_passed": rng.randrange(100),
                    "avg_wait_time_all_sides": round(rng.uniform(1, 50), 2),
                    "throughput": round(rng.uniform(0, 1), 2), "avg_speed": round(rng.uniform(5, 40), 2),
                    "fuel_saved": round(rng.uniform(-1, 2), 2), "co2_saved": round(rng.uniform(-2, 5), 2),
                    "emergency_overrides": rng.randrange(2)},
    }
