"""The HTTP feed's answer says which messages came late (feeds engineer's trial: a message 65 s late got a plain
`{"accepted": 1}`, so a gateway that buffers never heard its data were too old to steer anything).

FastAPI's TestClient on an app holding the route, as `test_feeds.py`'s `http` fixture, over a feed whose run is at
simulation second 100: `late` lists each message more than `late_after_s` behind it, by its index in the request;
an on-time batch is answered as before, and the OpenAPI document describes the field.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from signalwise.api import errors
from signalwise.api.routers.live_feeds import router
from signalwise.runtime.live.feeds import DetectorFeed

URL = "/api/v1/live/feeds/detectors"


@pytest.fixture
def posted(corridor):
    feed = DetectorFeed(corridor, now=lambda: 100.0)  # the run's clock stands at simulation second 100
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    app.state.live_feed = feed
    channel = next(d.channel for i in corridor if i.id == "J1" for d in i.detectors if d.kind == "stopbar")
    with TestClient(app) as client:
        yield client, feed, channel


def test_a_message_65_s_late_is_named_late_in_the_answer(posted):
    client, feed, ch = posted
    r = client.post(URL, json=[{"device_id": "J1", "channel": ch, "event": "on", "sim_time_s": 98.0},
                               {"device_id": "J1", "channel": ch, "event": "off", "sim_time_s": 35.0},
                               {"device_id": "J1", "channel": ch, "count_veh": 4, "occupancy": 0.1,
                                "interval_s": 60.0, "sim_time_s": 60.0}])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 3
    assert [(x["index"], x["device_id"], x["channel"], x["behind_s"]) for x in body["late"]] == \
        [(1, "J1", ch, 65.0), (2, "J1", ch, 40.0)]
    assert body["late"][0]["note"].startswith("its time (simulation second 35.0) is 65 s behind the run's clock, "
                                              "more than 10 s: logged in events.csv at its own time")
    assert "counted in the records" in body["late"][1]["note"]
    assert feed.stats()["late_messages"] == 2
    # a single message late: index 0
    r = client.post(URL, json={"device_id": "J1", "channel": ch, "event": "on", "sim_time_s": 80.0})
    assert [x["index"] for x in r.json()["late"]] == [0]


def test_an_on_time_batch_is_answered_with_its_count_alone(posted):
    client, _feed, ch = posted
    r = client.post(URL, json=[{"device_id": "J1", "channel": ch, "event": "on", "sim_time_s": 95.0}])
    assert r.status_code == 200 and r.json() == {"accepted": 1}


def test_the_route_documents_the_late_messages_in_its_answer(posted):
    client, _feed, _ch = posted
    spec = client.get("/openapi.json").json()
    ok = spec["paths"][URL]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    answer = spec["components"]["schemas"][ok["$ref"].rsplit("/", 1)[-1]]
    late = answer["properties"]["late"]
    assert late["type"] == "array" and "max_observation_age_s" in late["description"]
    item = spec["components"]["schemas"][late["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(item["properties"]) == {"index", "device_id", "channel", "behind_s", "note"}
