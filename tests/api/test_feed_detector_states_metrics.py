"""A detector state sent again at another time (an `on` while on, an `off` while off: not an exact repeat) is left
out of a `--field none` run's log and counted on `/metrics`, as `repeated_state` is in the status: a real run
without a simulator, attached to the API as `signalwise live` attaches it, fed over HTTP.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

URL = "/api/v1/live/feeds/detectors"
METRIC = "signalwise_feed_detector_states_repeated_total"


def test_detector_states_repeated_are_counted_on_metrics(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = create_app(Settings(database_url=db))
    _info, key = create_key(get_engine(db), "feeder", ["read", "ingest"])
    rt = LiveRuntime(RunConfig(scenario="corridor"), LiveOptions(speed=None, duration_s=30.0, field="none",
                                                                 sink="shadow"), tmp_path / "live")
    rt.open()
    app.state.live = rt  # as `signalwise live` (api/live_command.py `_serve`) attaches a run
    app.state.live_feed = rt.feed
    inter = next(i for i in rt.stepper.intersections if i.id == "J1")
    ch = next(d.channel for d in inter.detectors if d.kind == "stopbar")
    t = rt.stepper.t + 1.0
    sent = [(ch, "on", t), (ch, "on", t + 1.2), (ch, "off", t + 2.0), (ch, "off", t + 2.5), (ch, "on", t + 3.0)]
    with TestClient(app, headers={"X-API-Key": key}) as client:
        before = client.get("/metrics").text
        assert f"{METRIC} 0.0" in before, [line for line in before.splitlines() if "feed_" in line]
        body = [{"device_id": "J1", "channel": c, "event": e, "sim_time_s": s} for c, e, s in sent]
        assert client.post(URL, json=body).json() == {"accepted": 5}
        rt.run()  # 30 simulated seconds, unpaced: every event is written (in time order) by its end
        status = client.get("/api/v1/live/status").json()["feeds"]["detectors"]
        assert status["repeated_state"] == 2 and status["repeated_events"] == 0, status
        text = client.get("/metrics").text
    assert f"# TYPE {METRIC} counter" in text
    assert f"{METRIC} 2.0" in text, [line for line in text.splitlines() if "feed_" in line]
