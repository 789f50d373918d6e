"""`GET /api/v1/analytics/violations/trends` counts over the asked range taken to whole hours (its counts' resolution)
and says which: `start` and `end` in the answer. Asking `GET /api/v1/analytics/violations` for that range gives
the same total, whatever the bucket. A real app (TestClient) on real SQLite and PostgreSQL stores."""

from __future__ import annotations

import datetime as dt

from signalwise.store import get_engine
from signalwise.store.violations import insert_violations

T = dt.datetime(2026, 11, 29, 7, 0, 0, tzinfo=dt.UTC)
#: seconds after 07:00 of each violation: two before the asked start (07:00:33), one after the asked end (09:20)
OFFSETS = (31, 32, 40, 600, 3700, 7300, 8200, 8500)


def _violations(engine) -> None:
    insert_violations(engine, [{"occurred_at": T + dt.timedelta(seconds=s), "camera_id": "cam-1", "device_id": "B1",
                                "approach": "north", "kind": "red_light", "track_id": i}
                               for i, s in enumerate(OFFSETS)])


def _total(answer: dict) -> int:
    return sum(item["count"] for item in answer["items"])


def test_trends_say_the_whole_hours_they_counted_and_those_hours_hold_what_was_counted(client, db_url):
    _violations(get_engine(db_url))
    asked = {"start": "2026-11-29T07:00:33Z", "end": "2026-11-29T09:20:00+00:00"}
    exact = client.get("/api/v1/analytics/violations", params=asked).json()["total"]
    assert exact == 5  # 07:00:40, 07:10, 08:01:40, 09:01:40, 09:16:40
    for bucket in ("hour", "day"):
        r = client.get("/api/v1/analytics/violations/trends", params={**asked, "bucket": bucket})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert (answer["start"], answer["end"]) == ("2026-11-29T07:00:00Z", "2026-11-29T10:00:00Z"), answer
        assert _total(answer) == len(OFFSETS) != exact  # the rest of the hours at both ends count too
        widened = client.get("/api/v1/analytics/violations",
                             params={"start": answer["start"], "end": answer["end"]}).json()["total"]
        assert widened == _total(answer), bucket


def test_trends_echo_a_range_on_whole_hours_as_asked_in_utc_and_none_for_an_open_end(client, db_url):
    _violations(get_engine(db_url))
    # 09:00 at +02:00 is 07:00 UTC, a whole hour: kept; no end: open
    answer = client.get("/api/v1/analytics/violations/trends", params={"start": "2026-11-29T09:00:00+02:00"}).json()
    assert (answer["start"], answer["end"]) == ("2026-11-29T07:00:00Z", None), answer
    assert _total(answer) == len(OFFSETS)
    answer = client.get("/api/v1/analytics/violations/trends",
                        params={"end": "2026-11-29T08:00:00Z", "bucket": "day"}).json()
    assert (answer["start"], answer["end"]) == (None, "2026-11-29T08:00:00Z"), answer
    assert _total(answer) == 4
    answer = client.get("/api/v1/analytics/violations/trends").json()
    assert (answer["start"], answer["end"], _total(answer)) == (None, None, len(OFFSETS))
