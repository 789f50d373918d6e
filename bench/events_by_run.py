"""One run's hi-res events in a store of many runs: what the ATSPM API's queries cost, with and without the
index of events by run (`ix_hires_events_run_device_time`, migration 0024).

Makes a PostgreSQL schema of its own on 127.0.0.1:5432 (database `test` unless `--db` names another server's
database), fills `hires_events` with `--runs` runs of `--events` events each (5 devices, 10 events a second: an hour
of a 5-signal corridor is about 40,000), all stamped on the same day as simulated runs are, and times the median of
`--repeat` calls of
- `runs_with_events(device, 15-minute window)`, which every `GET /api/v1/atspm/{measure}` makes first;
- `query_events(device, run, 15-minute window)`, the rows one such call reads;
with the index, then with it dropped (the store of revision 0023: `runs_with_events` is timed with the index only,
since its skip over the stored runs reads the whole table at each step without it). Prints the plans
(`EXPLAIN ANALYZE`) of a query scanning all runs' events for the runs of a device in the window (`SELECT DISTINCT
simulation_id ...`, kept for comparison: `DISTINCT_QUERY`), of the store's own query of `runs_with_events`, and of
`query_events`'s. The schema is dropped at the end.

    .venv/bin/python bench/events_by_run.py [--runs 60] [--events 40000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
import uuid
from urllib.parse import quote

from sqlalchemy import create_engine, text

from signalwise.store import get_engine, query_events
from signalwise.store.engine import dispose_engines
from signalwise.store.events import runs_with_events

START = dt.datetime(2025, 1, 6, 0, 0)
WINDOW = (START, START + dt.timedelta(minutes=15))
#: the runs with events of device J1 in the window, by a DISTINCT scanning all runs' events there: kept for
#: comparison with the store's query (`runs_with_events`, a skip over the runs by the index)
DISTINCT_QUERY = ("SELECT DISTINCT simulation_id FROM hires_events WHERE device_id = 'J1' "
             "AND timestamp >= '2025-01-06 00:00' AND timestamp < '2025-01-06 00:15' ORDER BY simulation_id")


def _timed(call, repeat: int) -> float:  # noqa: ANN001
    call()  # warm
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _plan(conn, sql: str, params: dict | None = None) -> str:  # noqa: ANN001
    rows = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql), params or {}).scalars().all()
    return "\n".join("    " + r for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--events", type=int, default=40_000, help="events per run")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    schema = f"bench_events_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.db, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.db}{'&' if '?' in args.db else '?'}options={quote(f'-csearch_path={schema}')}"
    try:
        engine = get_engine(url)
        t0 = time.perf_counter()
        with engine.begin() as conn:
            # a simulation id as long as a live run's (40 characters); events of 5 devices, 10 a second
            conn.execute(text(
                "INSERT INTO hires_events (device_id, timestamp, event_code, parameter, simulation_id) "
                "SELECT 'J' || (i % 5 + 1), TIMESTAMP '2025-01-06 00:00' + i * INTERVAL '100 milliseconds', "
                "(ARRAY[1, 8, 9, 10, 81, 82])[i / 5 % 6 + 1], i / 30 % 8 + 1, "
                "'20261129-' || lpad(k::text, 6, '0') || '-live-corridor-max-pr' "
                "FROM generate_series(1, :runs) k, generate_series(0, :events - 1) i"),
                {"runs": args.runs, "events": args.events})
        with engine.connect() as conn:
            conn.execute(text("ANALYZE hires_events"))
            conn.commit()
            total = conn.execute(text("SELECT count(*) FROM hires_events")).scalar()
            run = conn.execute(text("SELECT max(simulation_id) FROM hires_events")).scalar()
        print(f"{total:,} events of {args.runs} runs stored in {time.perf_counter() - t0:.1f} s; run {run}")

        for label in ("with ix_hires_events_run_device_time", "without it (revision 0023)"):
            if label.startswith("without"):
                with engine.begin() as conn:
                    conn.execute(text("DROP INDEX ix_hires_events_run_device_time"))
                    conn.execute(text("ANALYZE hires_events"))
            q_ms = _timed(lambda: query_events(engine, device_id="J1", start=WINDOW[0], end=WINDOW[1],
                                               simulation_id=run), args.repeat)
            if label.startswith("with "):
                found = runs_with_events(engine, "J1", *WINDOW)
                assert len(found) == args.runs, found
                r_ms = _timed(lambda: runs_with_events(engine, "J1", *WINDOW), args.repeat)
                shown = f"runs_with_events {r_ms:.1f} ms, "
            else:  # its skip over the runs needs the index: without it each step reads the table (tens of seconds)
                shown = ""
            print(f"\n{label}: {shown}query_events (one run, one device, 15 min) {q_ms:.1f} ms "
                  f"(medians of {args.repeat})")
            with engine.connect() as conn:
                distinct_ms = _timed(lambda: conn.execute(text(DISTINCT_QUERY)).all(), args.repeat)
                print(f"  a DISTINCT over all runs' events in the window (for comparison): {distinct_ms:.1f} ms")
                print("  plan of that DISTINCT:\n" + _plan(conn, DISTINCT_QUERY))
                print("  plan of one run's events (query_events):\n" + _plan(
                    conn, "SELECT timestamp, device_id, event_code, parameter FROM hires_events WHERE "
                    "device_id = 'J1' AND simulation_id = :run AND timestamp >= '2025-01-06 00:00' AND "
                    "timestamp < '2025-01-06 00:15' ORDER BY timestamp, device_id, event_code, parameter",
                    {"run": run}))
                if label.startswith("with "):
                    print("  plan of runs_with_events's query:\n" + _plan(conn, _runs_query_text(engine)))
    finally:
        dispose_engines(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _runs_query_text(engine) -> str:  # noqa: ANN001
    """The SQL `runs_with_events(engine, 'J1', *WINDOW)` sends, with its parameters written in."""
    from sqlalchemy import event

    seen: list[str] = []

    def _keep(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        seen.append(context.compiled.construct_params() if context.compiled else {})
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", _keep)
    try:
        runs_with_events(engine, "J1", *WINDOW)
    finally:
        event.remove(engine, "before_cursor_execute", _keep)
    params, statement = seen[-2], seen[-1]
    for name, value in params.items():
        shown = f"'{value}'" if isinstance(value, (str, dt.datetime)) else str(value)
        statement = statement.replace(f"%({name})s", shown)
    return statement


if __name__ == "__main__":
    main()
