"""Latency of every analytics endpoint over 1,000,000 stored records.

    .venv/bin/python bench/api_bench.py [--records 1000000] [--db sqlite|postgresql|URL] [--repeat 60]

Fills a fresh database — a SQLite file in a temporary directory, or a
scratch schema on the test PostgreSQL, both removed afterwards (or --db URL,
kept and reused when it already holds enough) — with 50 runs x 20
intersections x 1,000 one-minute intervals (4 directions each), then times
each endpoint in-process: p50/p95 cold (cache cleared before every request)
and warm (served from the TTL cache), after one untimed call per endpoint
(first-call imports). At least 50 timed calls per endpoint, so p95 is not
just the slowest call. Target: p95 < 100 ms cold.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.*: test and bench helpers
from _records import START, record_lines  # noqa: E402
from support.databases import isolated_database, postgres_unavailable_reason  # noqa: E402

from signalwise.store import Settings, get_engine, ingest_records, register_run, write_run_metrics  # noqa: E402
from signalwise.store.settings import RATE_LIMIT_KINDS  # noqa: E402

CONTROLLERS = ("fixed", "webster", "actuated", "max-pressure", "q-learning")


def fill(url: str, n: int) -> None:
    engine = get_engine(url)
    from signalwise.store.queries import row_counts

    if row_counts(engine)["intersection_records"] >= n:
        return
    runs = 50
    sims = [f"BENCH_{c}_{seed}" for c in CONTROLLERS for seed in range(1, runs // len(CONTROLLERS) + 1)]
    t = time.perf_counter()
    ingest_records(engine, record_lines(n, sims, 20), chunk_records=5_000)
    for i, sim in enumerate(sims):
        _, controller, seed = sim.split("_")
        register_run(engine, sim, "corridor", controller, int(seed), {"seed": int(seed)})
        write_run_metrics(engine, sim, {"avg_delay_s": 40 - 2 * CONTROLLERS.index(controller) + i % 3,
                                        "co2_g": 1e6 - 1e4 * CONTROLLERS.index(controller), "fuel_ml": 4e5,
                                        "emergency_delay_s": 5.0})
    took = time.perf_counter() - t
    print(f"filled {n:,} records ({4 * n:,} signal rows) in {took:.0f} s ({n / took:,.0f} records/s from JSON lines)")


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def endpoints() -> list[str]:
    sim = "BENCH_max-pressure_3"
    start, hour, four = START, START + dt.timedelta(hours=1), START + dt.timedelta(hours=4)
    span = f"start={iso(start)}&end={iso(four)}"
    return [
        f"/api/v1/analytics/simulation/{sim}/summary",
        f"/api/v1/analytics/simulation/{sim}/summary?{span}",
        "/api/v1/analytics/wait-times",  # unfiltered: every record
        f"/api/v1/analytics/wait-times?simulation_id={sim}",
        "/api/v1/analytics/wait-times?intersection_id=INT_007&direction=east&limit=10",
        f"/api/v1/analytics/wait-times?simulation_id={sim}&direction=north&{span}",
        f"/api/v1/analytics/wait-times?start={iso(start)}&end={iso(hour)}",  # one hour of every run
        # not on hour boundaries: 1 whole hour from the hourly roll-ups, 2 x 2 buckets of every run from the
        # 5-minute ones (10 minutes: no whole quarter hour)
        f"/api/v1/analytics/wait-times?start={iso(start + dt.timedelta(minutes=50))}"
        f"&end={iso(hour + dt.timedelta(minutes=70))}",
        # the most a range within 3 hours reads: 1 hour, 2 x 3 quarter hours, 2 x 2 buckets of 5 minutes
        # and 2 x 4 minutes of rows, every run
        f"/api/v1/analytics/wait-times?start={iso(start + dt.timedelta(minutes=1))}"
        f"&end={iso(hour + dt.timedelta(minutes=119))}",
        # every record but the first and last minutes: 15 hours and the same edges, every run
        f"/api/v1/analytics/wait-times?start={iso(start + dt.timedelta(minutes=1))}"
        f"&end={iso(start + dt.timedelta(minutes=999))}",
        "/api/v1/analytics/speeds",
        f"/api/v1/analytics/speeds?simulation_id={sim}&intersection_id=INT_003&{span}",
        "/api/v1/analytics/environmental-impact?scenario=corridor",
        "/api/v1/analytics/comparison/baseline-vs-ai?scenario=corridor",
        "/api/v1/analytics/emergency-report",
        f"/api/v1/analytics/emergency-report?simulation_id={sim}&direction=west&{span}",
        f"/api/v1/analytics/time-series/{sim}?limit=1000",
        f"/api/v1/analytics/time-series/{sim}?intersection_id=INT_003&bucket_s=900",
        f"/api/v1/analytics/time-series/{sim}?{span}&limit=100&offset=100",
        f"/api/v1/dashboard/live-metrics?simulation_id={sim}",
        "/api/v1/dashboard/live-metrics",
        "/api/v1/dashboard/performance-comparison?scenario=corridor",
        f"/api/v1/charts/wait-time-trend?simulation={sim}&bucket_s=300",
        f"/api/v1/charts/wait-time-trend?simulation={sim}&simulation=BENCH_fixed_3&bucket_s=900",
        "/api/v1/charts/performance-scatter?scenario=corridor&x=avg_delay_s&y=co2_g",
    ]


@contextlib.contextmanager
def database(choice: str):
    """A URL: a throw-away SQLite file or PostgreSQL schema, or the URL given."""
    if choice not in ("sqlite", "postgresql"):
        yield choice
        return
    if choice == "postgresql" and (reason := postgres_unavailable_reason()):
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory() as tmp, isolated_database(choice, Path(tmp)) as url:
        yield url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--db", default="sqlite", help="sqlite | postgresql (throw-away) | a database URL")
    ap.add_argument("--repeat", type=int, default=60, help="timed calls per endpoint (at least 50)")
    ap.add_argument("--only", default="", help="time only the endpoint paths containing this text")
    args = ap.parse_args()
    if args.repeat < 50:
        ap.error("--repeat must be at least 50: with fewer calls p95 is the slowest call or close to it")
    with database(args.db) as url:
        fill(url, args.records)
        measure(url, args.repeat, args.only)


def measure(url: str, repeat: int, only: str = "") -> None:
    from fastapi.testclient import TestClient

    from signalwise.api import create_app

    app = create_app(Settings(database_url=url, cache_ttl_s=600, max_page_size=1000, rate_limits=dict.fromkeys(RATE_LIMIT_KINDS)))
    from signalwise.store.keys import create_key

    _, admin_key = create_key(get_engine(url), "api-bench", ["admin"])
    paths = [p for p in endpoints() if only in p]
    if not paths:
        raise SystemExit(f"no endpoint path contains {only!r}")
    print(f"{repeat} timed calls per endpoint; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'endpoint':<100} {'cold p50':>9} {'cold p95':>9} {'warm p95':>9}  (ms)")
    misses, p95s = [], []
    with TestClient(app) as client:
        for path in paths:
            client.get(path)  # once untimed: first-call imports (scipy for the statistics) are not query time
            cold, warm = [], []
            for _ in range(repeat):
                client.post("/api/v1/admin/clear-cache", headers={"X-API-Key": admin_key})
                t = time.perf_counter()
                r = client.get(path)
                cold.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (path, r.status_code, r.text[:200])
                t = time.perf_counter()
                client.get(path)
                warm.append((time.perf_counter() - t) * 1000)
            p95 = statistics.quantiles(cold, n=20)[-1]
            p95s.append(p95)
            if p95 >= 100:
                misses.append(path)
            print(f"{path[:100]:<100} {statistics.median(cold):9.1f} {p95:9.1f} "
                  f"{statistics.quantiles(warm, n=20)[-1]:9.1f}{'  MISS' if p95 >= 100 else ''}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{len(paths) - len(misses)}/{len(paths)} endpoint queries under 100 ms p95 cold "
          f"(median of the p95s {statistics.median(p95s):.1f} ms, worst {max(p95s):.1f} ms)")


if __name__ == "__main__":
    main()
