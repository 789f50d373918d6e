"""Synthetic ingestion records for the store/API benchmarks (deterministic, fast to make)."""

from __future__ import annotations

import datetime as dt
import json
import random

DIRECTIONS = ("north", "south", "east", "west")
START = dt.datetime(2025, 9, 10, 6, 0, tzinfo=dt.UTC)


def record_dict(sim: str, intersection: str, step: int, rng: random.Random, interval_s: int = 60) -> dict:
    ts = START + dt.timedelta(seconds=step * interval_s)
    signals = []
    for i, d in enumerate(DIRECTIONS):
        signals.append({
            "direction": d,
            "vehicle_counts": {"car": rng.randrange(0, 90), "bus": rng.randrange(0, 4), "truck": rng.randrange(0, 6),
                               "bike": rng.randrange(0, 10), "rickshaw": 0},
            "emergency_vehicle_present": rng.random() < 0.01,
            "signal_status": ("GREEN", "RED", "YELLOW", "RED")[(i + step) % 4],
            "signal_timer": rng.randrange(0, 40),
            "vehicles_crossed": rng.randrange(0, 50),
            "avg_wait_time": round(rng.uniform(2, 60), 2),
            "green_time_allocated": rng.randrange(10, 45),
        })
    return {
        "simulation_id": sim, "timestamp": ts.isoformat().replace("+00:00", "Z"), "intersection_id": intersection,
        "signals": signals,
        "metrics": {"total_vehicles_passed": rng.randrange(0, 200), "avg_wait_time_all_sides": round(rng.uniform(5, 50), 2),
                    "throughput": round(rng.uniform(0.2, 1.0), 3), "avg_speed": round(rng.uniform(10, 45), 2),
                    "fuel_saved": round(rng.uniform(-1, 3), 3), "co2_saved": round(rng.uniform(-2, 8), 3),
                    "emergency_overrides": int(rng.random() < 0.02)},
    }


def record_lines(n: int, sims: list[str], intersections: int, seed: int = 1):
    """n JSON lines, time-ordered per simulation: sims x intersections x steps."""
    rng = random.Random(seed)
    per_sim = max(1, n // len(sims))
    produced = 0
    for sim in sims:
        step = 0
        made = 0
        while made < per_sim and produced < n:
            for k in range(intersections):
                if made >= per_sim or produced >= n:
                    break
                yield json.dumps(record_dict(sim, f"INT_{k:03d}", step, rng))
                made += 1
                produced += 1
            step += 1
