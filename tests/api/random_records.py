"""Random but valid ingestion records, and a comparison of nested answers, for tests that check
answers against what was sent."""

import random

import pytest

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


def assert_same(got, want, where: str, exact_keys: bool = False) -> None:  # noqa: ANN001
    """Nested dicts/lists equal, floats approximately; `where` names the path that differs.

    `exact_keys`: dicts must have the same keys; otherwise `got` may have keys `want` lacks."""
    if isinstance(want, dict):
        if exact_keys:
            assert got.keys() == want.keys(), where
        for k in want:
            assert k in got, f"{where}: no {k}"
            assert_same(got[k], want[k], f"{where} .{k}", exact_keys)
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (x, y) in enumerate(zip(got, want, strict=True)):
            assert_same(x, y, f"{where} [{i}]", exact_keys)
    elif isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want), where
    else:
        assert got == want, where
