"""Questions without a time range are answered from the whole-run roll-ups, questions with one
from the bucketed roll-ups (hours, quarter hours, 5 minutes) and the rows of what is left at the edges
(`test_api_time_ranges.py`): asking with a range that covers everything must give the same
answer, whether it is read from whole hours only or cut into hours, 5-minute buckets and rows,
also after a re-send replaced some records."""

import datetime as dt
import random

import pytest
from random_records import DIRECTIONS, assert_same, random_record

T0 = dt.datetime(2025, 9, 10, 8, tzinfo=dt.UTC)
EVERYTHING = [
    "start=2000-01-01T00:00:00Z&end=2100-01-01T00:00:00Z",  # whole hours
    # records run 08:00-09:12: hour 08 from the hourly roll-ups, 07:55-08:00 and 09:00-09:10 from the
    # 5-minute ones (no whole quarter hour at either edge), 07:52:30-07:55 nothing, 09:10-09:13:30 from
    # the rows
    "start=2025-09-10T07:52:30Z&end=2025-09-10T09:13:30Z",
]


def batch(rng: random.Random, sims=("S1", "S2"), minutes=range(73)) -> list[dict]:
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


def post(client, records: list[dict]) -> None:  # noqa: ANN001
    for i in range(0, len(records), 50):  # the test app's batch maximum
        resp = client.post("/api/v1/ingest/batch", json=records[i:i + 50])
        assert resp.status_code == 201, resp.text


def answers_agree(client) -> None:
    for q in QUESTIONS:
        rolled = client.get(q)
        assert rolled.status_code == 200, (q, rolled.text)
        for everything in EVERYTHING:
            ranged = client.get(q + ("&" if "?" in q else "?") + everything)
            assert ranged.status_code == 200, (q, everything, ranged.text)
            assert_same(rolled.json(), ranged.json(), f"{q} {everything}", exact_keys=True)


@pytest.mark.slow
def test_rollups_and_rows_give_the_same_answers(client):
    rng = random.Random(11)
    post(client, batch(rng))
    answers_agree(client)
    body = client.get("/api/v1/analytics/wait-times?limit=100").json()
    assert body["total"] == len(body["items"]) > 0 and body["overall"]["samples"] > 0


@pytest.mark.slow
def test_same_answers_after_resending_part_of_a_run(client):
    rng = random.Random(12)
    post(client, batch(rng))
    before = client.get("/api/v1/analytics/wait-times?simulation_id=S1&limit=100").json()
    post(client, batch(rng, sims=("S1",), minutes=range(58, 73)))  # across 09:00
    after = client.get("/api/v1/analytics/wait-times?simulation_id=S1&limit=100").json()
    assert after != before  # the cache was dropped and the totals changed
    answers_agree(client)
    summary = client.get("/api/v1/analytics/simulation/S1/summary").json()
    assert summary["records"] == 73 * 3 and summary["last_timestamp"] == "2025-09-10T09:12:00Z"
