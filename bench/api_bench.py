"""Latency of every analytics endpoint over 1,000,000 stored records.

    .venv/bin/python bench/api_bench.py [--records 1000000] [--db URL] [--repeat 20]

Fills a SQLite file (or --db) once with 50 runs x 20 intersections x 1,000
intervals (4 directions each; reused when it already holds enough), then
times each endpoint in-process: p50/p95 cold (cache cleared before every
request) and warm (served from the TTL cache). Target: p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _records import START, record_lines  # noqa: E402

from signalwise.store import Settings, get_engine, ingest_records, register_run, write_run_metrics  # noqa: E402

CONTROLLERS = ("fixed", "webster", "actuated", "max-pressure", "q-learning")


def fill(url: str, n: int) -> None:
    engine = get_engine(url)
    from signalwise.analytics.queries import row_counts

    if row_counts(engine)["intersection_records"] >= n:
        return
    runs = 50
    sims = [f"BENCH_{c}_{seed}" for c in CONTROLLERS for seed in range(1, runs // len(CONTROLLERS) + 1)]
    t = time.perf_counter()
    ingest_records(engine, record_lines(n, sims, 20), chunk_records=10_000)
    for i, sim in enumerate(sims):
        _, controller, seed = sim.split("_")
        register_run(engine, sim, "corridor", controller, int(seed), {"seed": int(seed)})
        write_run_metrics(engine, sim, {"avg_delay_s": 40 - 2 * CONTROLLERS.index(controller) + i % 3,
                                        "co2_g": 1e6 - 1e4 * CONTROLLERS.index(controller), "fuel_ml": 4e5,
                                        "emergency_delay_s": 5.0})
    print(f"filled {n:,} records in {time.perf_counter() - t:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--db", default="sqlite:///bench-api.db")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    fill(args.db, args.records)
    from fastapi.testclient import TestClient

    from signalwise.api import create_app

    sim = "BENCH_max-pressure_3"
    start = START.isoformat().replace("+00:00", "Z")
    mid = START.replace(hour=START.hour + 4).isoformat().replace("+00:00", "Z")
    endpoints = [
        f"/api/v1/analytics/simulation/{sim}/summary",
        f"/api/v1/analytics/wait-times?simulation_id={sim}",
        f"/api/v1/analytics/wait-times?simulation_id={sim}&direction=north&start={start}&end={mid}",
        "/api/v1/analytics/wait-times?intersection_id=INT_007&direction=east&limit=10",
        f"/api/v1/analytics/speeds?simulation_id={sim}",
        "/api/v1/analytics/environmental-impact?scenario=corridor",
        "/api/v1/analytics/comparison/baseline-vs-ai?scenario=corridor",
        f"/api/v1/analytics/emergency-report?simulation_id={sim}",
        f"/api/v1/analytics/time-series/{sim}?limit=1000",
        f"/api/v1/analytics/time-series/{sim}?intersection_id=INT_003&bucket_s=900",
        f"/api/v1/dashboard/live-metrics?simulation_id={sim}",
        "/api/v1/dashboard/performance-comparison?scenario=corridor",
        f"/api/v1/charts/wait-time-trend?simulation={sim}&bucket_s=300",
        "/api/v1/charts/performance-scatter?scenario=corridor&x=avg_delay_s&y=co2_g",
        "/api/v1/analytics/wait-times",  # unfiltered: every record
    ]
    app = create_app(Settings(database_url=args.db, cache_ttl_s=600, max_page_size=1000))
    print(f"{'endpoint':<92} {'cold p50':>9} {'cold p95':>9} {'warm p95':>9}  (ms)")
    misses = 0
    with TestClient(app) as client:
        for path in endpoints:
            cold, warm = [], []
            for _ in range(args.repeat):
                client.post("/api/v1/admin/clear-cache")
                t = time.perf_counter()
                r = client.get(path)
                cold.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (path, r.status_code, r.text[:200])
                t = time.perf_counter()
                client.get(path)
                warm.append((time.perf_counter() - t) * 1000)
            p95 = statistics.quantiles(cold, n=20)[-1]
            misses += p95 >= 100
            print(f"{path[:92]:<92} {statistics.median(cold):9.1f} {p95:9.1f} "
                  f"{statistics.quantiles(warm, n=20)[-1]:9.1f}{'  MISS' if p95 >= 100 else ''}")
    print(f"{len(endpoints) - misses}/{len(endpoints)} endpoint queries under 100 ms p95 cold")


if __name__ == "__main__":
    main()
