"""Questions without a time range are answered from the whole-run roll-ups, questions with one
from the hourly roll-ups (and the rows of partial edge hours, `test_api_time_ranges.py`): asking
with a range that covers everything must give the same answer, also after a re-send replaced
some records."""

import datetime as dt
import random

import pytest
from random_records import DIRECTIONS, random_record

EVERYTHING = "start=2000-01-01T00:00:00Z&end=2100-01-01T00:00:00Z"
T0 = dt.datetime(2025, 9, 10, 8, tzinfo=dt.UTC)


def batch(rng: random.Random, sims=("S1", "S2"), minutes=range(6)) -> list[dict]:
    out = []
    for sim in sims:
        for m in minutes:
            for k, inter in enumerate(("A", "B", "C")):
                dirs = DIRECTIONS[: 1 + (m + k) % 4]
                out.append(random_record(rng, sim, inter, (T0 + dt.timedelta(minutes=m)).isoformat(), dirs))
    return out


QUESTIONS = [
    "/api/v1/analytics/wait-times?limit=100",
    "/api/v1/analytics/wait-times?simulation_id=S1&direction=north&limit=100",
    "/api/v1/analytics/wait-times?intersection_id=B&limit=3&offset=2",
    "/api/v1/analytics/speeds?limit=100",
    "/api/v1/analytics/speeds?simulation_id=S2&intersection_id=C",
    "/api/v1/analytics/emergency-report?limit=100",
    "/api/v1/analytics/emergency-report?simulation_id=S1&direction=east",
    "/api/v1/analytics/simulation/S1/summary",
    "/api/v1/analytics/simulation/S2/summary?intersection_id=A",
]


def answers_agree(client) -> None:
    for q in QUESTIONS:
        rolled = client.get(q)
        raw = client.get(q + ("&" if "?" in q else "?") + EVERYTHING)
        assert rolled.status_code == raw.status_code == 200, (q, rolled.text, raw.text)
        assert_same(rolled.json(), raw.json(), q)


def assert_same(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where} .{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where} [{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b), where
    else:
        assert a == b, where


def test_rollups_and_rows_give_the_same_answers(client):
    rng = random.Random(11)
    assert client.post("/api/v1/ingest/batch", json=batch(rng)).status_code == 201
    answers_agree(client)
    body = client.get("/api/v1/analytics/wait-times?limit=100").json()
    assert body["total"] == len(body["items"]) > 0 and body["overall"]["samples"] > 0


def test_same_answers_after_resending_part_of_a_run(client):
    rng = random.Random(12)
    assert client.post("/api/v1/ingest/batch", json=batch(rng)).status_code == 201
    before = client.get("/api/v1/analytics/wait-times?simulation_id=S1&limit=100").json()
    assert client.post("/api/v1/ingest/batch", json=batch(rng, sims=("S1",), minutes=range(2, 8))).status_code == 201
    after = client.get("/api/v1/analytics/wait-times?simulation_id=S1&limit=100").json()
    assert after != before  # the cache was dropped and the totals changed
    answers_agree(client)
    summary = client.get("/api/v1/analytics/simulation/S1/summary").json()
    assert summary["records"] == 8 * 3 and summary["last_timestamp"] == "2025-09-10T08:07:00Z"
