"""Time ranges read whole hours from the hourly roll-ups, whole quarter hours and then 5-minute
buckets of the partial hours from the finer roll-ups and the rest from the rows: the answers must
equal what the records sent add up to (computed here in Python), for ranges on hour boundaries, off
them (all four sources), open at one end, inside one hour, inside one 5-minute bucket, and after a
re-send replaced records."""

import datetime as dt
import random
from urllib.parse import quote

import pytest
from random_records import DIRECTIONS, assert_same, random_record

from signalwise.store.queries import LEVELS, Filters

T0 = dt.datetime(2025, 9, 10, 8, 3, tzinfo=dt.UTC)
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
SIMS, INTERSECTIONS = ("S1", "S2"), ("A", "B", "C")


def batch(rng: random.Random, steps=range(100), sims=SIMS, dirs_offset: int = 0) -> list[dict]:
    """Records 2 min 30 s apart from 08:03 UTC (~4 hours; two per 5-minute bucket), odd steps written
    in +05:30."""
    out = []
    for sim in sims:
        for step in steps:
            ts = T0 + dt.timedelta(seconds=150 * step)
            for k, inter in enumerate(INTERSECTIONS):
                dirs = DIRECTIONS[: 1 + (step + k + dirs_offset) % 4]
                out.append(random_record(rng, sim, inter, (ts.astimezone(IST) if step % 2 else ts).isoformat(), dirs))
    return out


def at(hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(2025, 9, 10, hh, mm, ss, tzinfo=dt.UTC)


RANGES = [
    (at(9, 0), at(11, 0)),  # whole hours only
    (at(8, 17, 30), at(10, 41)),  # whole hours, whole 5-minute buckets and rows at both ends
    (at(8, 4), at(11, 56, 30)),  # the same with most of each edge hour in 5-minute buckets
    (None, at(10, 41)),  # open start
    (at(8, 17, 30), None),  # open end
    (at(9, 5), at(9, 50)),  # inside one hour: quarter hours and 5-minute buckets only
    (at(9, 3), at(9, 51)),  # inside one hour: 5-minute buckets and rows
    (at(9, 50), at(10, 10)),  # two partial hours, no whole one
    (at(9, 21), at(9, 24)),  # inside one 5-minute bucket: rows only
    (at(10, 0).astimezone(IST), at(12, 0).astimezone(IST)),  # whole UTC hours given in another zone
]


def in_range(ts: dt.datetime, start, end) -> bool:  # noqa: ANN001
    return (start is None or ts >= start) and (end is None or ts < end)


def latest(sent: list[dict]) -> list[tuple[dt.datetime, dict]]:
    last = {}
    for r in sent:
        ts = dt.datetime.fromisoformat(r["timestamp"]).astimezone(dt.UTC)
        last[(r["simulation_id"], r["intersection_id"], ts)] = (ts, r)
    return list(last.values())


def expected_wait_times(sent, start, end, sim=None, direction=None) -> dict:  # noqa: ANN001
    groups = {}
    for ts, r in latest(sent):
        if not in_range(ts, start, end) or sim not in (None, r["simulation_id"]):
            continue
        for s in r["signals"]:
            if direction not in (None, s["direction"]):
                continue
            g = groups.setdefault((r["simulation_id"], r["intersection_id"], s["direction"]), [])
            g.append(s)
    items = [{"simulation_id": k[0], "intersection_id": k[1], "direction": k[2],
              "mean_wait_s": sum(s["avg_wait_time"] for s in g) / len(g),
              "max_wait_s": max(s["avg_wait_time"] for s in g), "samples": len(g),
              "vehicles_crossed": sum(s["vehicles_crossed"] for s in g)} for k, g in sorted(groups.items())]
    n = sum(i["samples"] for i in items)
    overall = {"mean_wait_s": sum(i["mean_wait_s"] * i["samples"] for i in items) / n if n else None,
               "max_wait_s": max((i["max_wait_s"] for i in items), default=None), "samples": n}
    return {"total": len(items), "items": items, "overall": overall}


def per_intersection(sent, start, end, sim=None) -> dict:  # noqa: ANN001
    groups = {}
    for ts, r in sorted(latest(sent), key=lambda x: x[0]):
        if in_range(ts, start, end) and sim in (None, r["simulation_id"]):
            groups.setdefault((r["simulation_id"], r["intersection_id"]), []).append((ts, r))
    return dict(sorted(groups.items()))


def expected_speeds(sent, start, end) -> dict:  # noqa: ANN001
    items = []
    for (sim, inter), g in per_intersection(sent, start, end).items():
        speeds = [r["metrics"]["avg_speed"] for _, r in g]
        items.append({"simulation_id": sim, "intersection_id": inter, "mean_speed": sum(speeds) / len(speeds),
                      "min_speed": min(speeds), "max_speed": max(speeds), "samples": len(speeds)})
    n = sum(i["samples"] for i in items)
    return {"total": len(items), "items": items,
            "overall": {"mean_speed": sum(i["mean_speed"] * i["samples"] for i in items) / n if n else None,
                        "samples": n}}


def expected_emergency(sent, start, end, sim, direction) -> dict:  # noqa: ANN001
    items = [{"simulation_id": s, "intersection_id": i,
              "emergency_overrides": sum(r["metrics"]["emergency_overrides"] for _, r in g),
              "intervals_with_emergency_vehicle": sum(
                  any(x["emergency_vehicle_present"] and x["direction"] == direction for x in r["signals"])
                  for _, r in g),
              "intervals": len(g), "emergency_delay_s": None}
             for (s, i), g in per_intersection(sent, start, end, sim).items()]
    return {"total": len(items), "items": items}


def expected_summary(sent, start, end, sim) -> dict:  # noqa: ANN001
    g = [x for group in per_intersection(sent, start, end, sim).values() for x in group]
    n = len(g)
    m = [r["metrics"] for _, r in g]

    def mean(k: str) -> float | None:
        return sum(x[k] for x in m) / n if n else None

    def total(k: str) -> float | None:
        return sum(x[k] for x in m) if n else None
    iso = (lambda t: t.isoformat().replace("+00:00", "Z"))  # noqa: E731
    return {"records": n, "intersections": len({r["intersection_id"] for _, r in g}),
            "first_timestamp": iso(min(t for t, _ in g)) if n else None,
            "last_timestamp": iso(max(t for t, _ in g)) if n else None,
            "record_metrics": {"avg_wait_time": mean("avg_wait_time_all_sides"), "avg_speed": mean("avg_speed"),
                               "throughput": mean("throughput"), "total_vehicles_passed": total("total_vehicles_passed"),
                               "fuel_saved": total("fuel_saved"), "co2_saved": total("co2_saved"),
                               "emergency_overrides": total("emergency_overrides")}}


def span(start, end) -> str:  # noqa: ANN001
    parts = ([f"start={quote(start.isoformat())}"] if start else []) + ([f"end={quote(end.isoformat())}"] if end else [])
    return "&".join(parts)


def answers_match(client, sent: list[dict]) -> None:  # noqa: ANN001
    for start, end in RANGES:
        q = span(start, end)
        cases = [
            (f"/api/v1/analytics/wait-times?limit=100&{q}", expected_wait_times(sent, start, end)),
            (f"/api/v1/analytics/wait-times?simulation_id=S2&direction=east&{q}",
             expected_wait_times(sent, start, end, "S2", "east")),
            (f"/api/v1/analytics/speeds?limit=100&{q}", expected_speeds(sent, start, end)),
            (f"/api/v1/analytics/emergency-report?simulation_id=S1&direction=south&{q}",
             expected_emergency(sent, start, end, "S1", "south")),
            (f"/api/v1/analytics/simulation/S1/summary?{q}", expected_summary(sent, start, end, "S1")),
        ]
        for path, want in cases:
            resp = client.get(path)
            assert resp.status_code == 200, (path, resp.text)
            assert_same(resp.json(), want, path)


def post_all(client, records: list[dict]) -> None:  # noqa: ANN001
    for i in range(0, len(records), 50):  # the test app's batch maximum
        resp = client.post("/api/v1/ingest/batch", json=records[i:i + 50])
        assert resp.status_code == 201, resp.text


@pytest.mark.slow
def test_time_ranges_equal_the_records_sent(client):
    rng = random.Random(21)
    sent = batch(rng)
    post_all(client, sent)
    assert expected_wait_times(sent, *RANGES[0])["overall"]["samples"] > 0
    answers_match(client, sent)


@pytest.mark.slow
def test_time_ranges_equal_the_records_sent_after_a_resend(client):
    rng = random.Random(22)
    sent = batch(rng)
    post_all(client, sent)
    # replace records across an hour boundary with other values and other directions, add new ones after
    again = batch(rng, steps=range(20, 70), sims=("S1",), dirs_offset=2)
    post_all(client, again)
    answers_match(client, sent + again)


def test_a_range_is_cut_into_whole_buckets_of_each_level_and_rows():
    def pieces(start, end) -> list:  # noqa: ANN001
        return [(level and level.table.name.removeprefix("bucket_rollups_"), span)
                for level, span in Filters(start=start, end=end).pieces()]
    assert [lv.width for lv in LEVELS] == [dt.timedelta(hours=1), dt.timedelta(minutes=15), dt.timedelta(minutes=5)]
    assert pieces(at(8, 17, 30), at(10, 41)) == [
        ("1h", (at(9, 0), at(10, 0))),
        ("15min", (at(8, 30), at(9, 0))), ("5min", (at(8, 20), at(8, 30))), (None, (at(8, 17, 30), at(8, 20))),
        ("15min", (at(10, 0), at(10, 30))), ("5min", (at(10, 30), at(10, 40))), (None, (at(10, 40), at(10, 41)))]
    assert pieces(None, at(10, 41)) == [("1h", (None, at(10, 0))), ("15min", (at(10, 0), at(10, 30))),
                                        ("5min", (at(10, 30), at(10, 40))), (None, (at(10, 40), at(10, 41)))]
    assert pieces(at(9, 5), at(9, 50)) == [("15min", (at(9, 15), at(9, 45))), ("5min", (at(9, 5), at(9, 15))),
                                           ("5min", (at(9, 45), at(9, 50)))]
    assert pieces(at(9, 21), at(9, 24)) == [(None, (at(9, 21), at(9, 24)))]
    assert pieces(at(10, 0).astimezone(IST), None) == [("1h", (at(10, 0), None))]
