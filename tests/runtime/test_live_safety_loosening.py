"""An operator's key cannot switch a safety function off, or cut a clearance below ITE's, while a live run goes on.

Found in a security review: any key with the `operate` scope could

- switch emergency preemption and the confidence fallback off (`PUT /api/v1/live/config/shield {"shield":
  {"preempt": false, "confidence_threshold": 0, ...}}`), answered "applied" with an empty reason, with nothing
  logged nor alerted, and applied again, silently, at every restart;
- cut the all-red to 0 s and the yellow to 3 s at every signal (`PUT /api/v1/live/config/timing`), only a log
  warning, kept across restarts;

while the same API refused to loosen a safety alert past its limits, or `ped_intervals: false`. The live change
path now follows one rule for all three (`runtime/live/loosening.py`): tighten freely, loosen as far as the
limit, never past it, unless the run started looser (its `--config`, which may still set those values).

A real uvicorn on 127.0.0.1 serves a real live run of `corridor` (SUMO in-process) with the built-in alert rules,
as `signalwise live` wires them; the requests are real HTTP with an `operate` key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time

import pytest
from support.loopback import serving_port

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.alerts import engine_from_config, load_alert_config
from signalwise.runtime.live.lasting import append_change
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

LIVE = "/api/v1/live"
#: the review's request, word for word
SWITCHED_OFF = {"shield": {"preempt": False, "confidence_threshold": 0.0, "max_observation_age_s": 300}}
CUT = {"timing": {"all_red_s": 0, "yellow_s": 3.0, "ped_clearance_s": 0, "min_green_s": 2}}


@contextlib.contextmanager
def _served(tmp_path, cfg: RunConfig, name: str = "live"):
    """corridor at 40x with the built-in alert rules (as `signalwise live` builds them), served on 127.0.0.1;
    yields (httpx client with an `ops` key holding operate and read, the runtime)."""
    import httpx

    from signalwise.api import create_app

    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    kept = tmp_path / "key.txt"  # a second run of the corridor in a test is served with the same key
    if not kept.exists():
        kept.write_text(create_key(get_engine(db), "ops", ["read", "operate"])[1])
    key = kept.read_text()
    app = create_app(Settings(database_url=db))
    alerts, _notifier = engine_from_config(load_alert_config(None))
    rt = LiveRuntime(cfg, LiveOptions(speed=40.0, duration_s=3600, in_process=True), tmp_path / "runs" / name,
                     alerts=alerts)
    rt.open()
    app.state.live = rt
    loop = threading.Thread(target=rt.run, name="live-loop", daemon=True)
    loop.start()
    try:
        with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}",
                                                     headers={"X-API-Key": key}, timeout=20) as client:
            yield client, rt
    finally:
        rt.stop()
        loop.join(timeout=20)
        assert not loop.is_alive(), "the live loop did not stop"


def _alert(client, rule: str, timeout_s: float = 20.0) -> dict:
    """The active alert of `rule`, waited for (bounded: the loop evaluates the rules about once a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        alerts = client.get(f"{LIVE}/alerts").json()
        found = [a for a in alerts["active"] if a["rule"] == rule]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no active {rule} alert: {alerts}"
        time.sleep(0.2)


def test_preemption_and_the_confidence_fallback_cannot_be_switched_off_and_an_allowed_change_is_said(tmp_path,
                                                                                                      caplog):
    cfg = RunConfig(scenario="corridor", controller="max-pressure")
    with caplog.at_level(logging.WARNING, logger="signalwise.live"), _served(tmp_path, cfg) as (client, rt):
        before = client.get(f"{LIVE}/config").json()["shield"]
        off = client.put(f"{LIVE}/config/shield", json=SWITCHED_OFF)
        assert off.status_code == 422, off.text
        message = off.json()["message"]
        assert message.startswith("change refused: shield.preempt false: false switches emergency-vehicle "
                                  "preemption off at every signal; at run time it stays true; "
                                  "shield.confidence_threshold 0: "), message
        assert "at run time it stays at least 0.5" in message and "a run's --config may set it" in message, message
        # nothing of it applied, and the refusal is in the change log with its reason
        assert client.get(f"{LIVE}/config").json()["shield"] == before
        refused = client.get(f"{LIVE}/changes").json()[-1]
        assert (refused["kind"], refused["result"], refused["who"]) == ("shield", "refused", "ops")
        assert refused["reason"] == message.removeprefix("change refused: ")
        # loosening the confidence threshold below its floor is refused too; tightening it is not
        lower = client.put(f"{LIVE}/config/shield", json={"shield": {"confidence_threshold": 0.3}})
        assert lower.status_code == 422 and "shield.confidence_threshold 0.3" in lower.text, lower.text

        caplog.clear()
        ok = client.put(f"{LIVE}/config/shield", json={"shield": {"confidence_threshold": 0.7,
                                                                   "max_observation_age_s": 30}})
        assert ok.status_code == 200, ok.text
        said = "confidence_threshold 0.5 -> 0.7; max_observation_age_s 10 -> 30"
        assert ok.json()["result"] == "applied" and ok.json()["reason"] == f"shield settings changed: {said}"
        assert [r.getMessage() for r in caplog.records if "shield change" in r.getMessage()] == [
            f"shield change by ops: {said}"]
        alert = _alert(client, "shield_changed")
        assert alert["level"] == "info" and alert["subjects"] == ["ops"], alert
        assert said in alert["message"], alert["message"]
        in_force = client.get(f"{LIVE}/config").json()
        assert in_force["shield"]["confidence_threshold"] == 0.7
        # the dashboard's form offers no value the server refuses
        assert in_force["limits"]["shield"]["confidence_threshold"] == {"min": 0.5, "max": 1.0}

    # an earlier version stored the review's change in the corridor's lasting changes: a restart refuses it, says
    # so, and applies the allowed one again, saying that too (stderr, the change log, the alert)
    lasting = rt.site_changes_file
    stored = [json.loads(line) for line in lasting.read_text().splitlines()]
    assert [e["payload"]["shield"] for e in stored] == [{"confidence_threshold": 0.7, "max_observation_age_s": 30}]
    append_change(lasting, {"at": "2026-11-29T23:11:05+00:00", "who": "ops", "kind": "shield",
                            "payload": {"kind": "shield", **SWITCHED_OFF}, "result": "applied", "reason": "",
                            "field": "sumo"})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="signalwise.live"), \
            _served(tmp_path, cfg, "again") as (client, again):
        shield = client.get(f"{LIVE}/config").json()["shield"]
        assert (shield["preempt"], shield["confidence_threshold"], shield["max_observation_age_s"]) == (True, 0.7, 30)
        replayed = [c for c in client.get(f"{LIVE}/changes").json() if c.get("replayed")]
        assert [(c["result"], c["made_by"]) for c in replayed] == [("applied", "ops"), ("refused", "ops")]
        assert replayed[1]["reason"].startswith("shield.preempt false: "), replayed[1]
        logged = [r.getMessage() for r in caplog.records]
        assert any(m.startswith(f"shield change applied again at start from {lasting} (made by ops at ")
                   and m.endswith(f"): {said}") for m in logged), logged
        assert any(m.startswith("a stored change could not be applied again (shield.preempt false") for m in logged)
        alert = _alert(client, "shield_changed")
        assert "applied again at start" in alert["message"], alert["message"]


def test_a_clearance_below_ite_is_refused_at_run_time_naming_the_signal_the_value_and_the_minimum(tmp_path):
    with _served(tmp_path, RunConfig(scenario="corridor", controller="max-pressure")) as (client, rt):
        cut = client.put(f"{LIVE}/config/timing", json=CUT)
        assert cut.status_code == 422, cut.text
        message = cut.json()["message"]
        # every signal named, each phase with the value asked and ITE's for its geometry
        assert message.startswith("change refused: timing: signal 'J1': phase 1 yellow_s 3 s below ITE's 3.3 s and "
                                  "all_red_s 0 s below ITE's 2 s; "), message
        assert all(f"signal '{tls}': " in message for tls in ("J1", "J2", "J3", "J4", "J5")), message
        assert "phase 3 yellow_s 3 s below ITE's 3.3 s and all_red_s 0 s below ITE's 2.4 s" in message
        assert "signal_model.json timing.ite_phase_yellow_s and ite_phase_all_red_s" in message
        assert "under the safety profile, which this live run keeps until it ends, a clearance below ITE's is not " \
               "applied at run time" in message and "a run's --config may set it" in message, message
        one = client.put(f"{LIVE}/config/timing/intersections/J2", json={"timing": {"all_red_s": 2}})
        assert one.status_code == 422, one.text
        assert one.json()["message"].startswith("change refused: timing: signal 'J2': phase 3 all_red_s 2 s below "
                                                "ITE's 2.4 s ("), one.text
        in_force = client.get(f"{LIVE}/config").json()
        assert in_force["timing_revision"] == 0 and in_force["timing"]["all_red_s"] is None
        # at or above ITE's it is applied, as before
        ok = client.put(f"{LIVE}/config/timing/intersections/J2", json={"timing": {"all_red_s": 2.4}})
        assert ok.status_code == 200 and ok.json()["result"] == "applied", ok.text
        assert [c["result"] for c in client.get(f"{LIVE}/changes").json()] == ["refused", "refused", "applied"]


def _runtime(tmp_path, name: str, timing: dict | str | None = None) -> LiveRuntime:
    cfg = RunConfig(scenario="corridor", controller="max-pressure", **({"timing": timing} if timing else {}))
    rt = LiveRuntime(cfg, LiveOptions(speed=None, duration_s=5, in_process=True, state_every_s=60),
                     tmp_path / name / "run")
    rt.open()
    return rt


def test_a_run_started_below_ite_keeps_its_clearance_and_cannot_cut_it_further(tmp_path):
    """The --config may set J2's red clearance to 2 s (below ITE's 2.4 s for its phase 3: it runs as given and is
    said); a change at run time may keep it, not shorten it."""
    rt = _runtime(tmp_path, "own", {"per_intersection": {"J2": {"all_red_s": 2}}})
    kept = rt.submit(ch.SignalTimingChange(intersection_id="J2", timing={"all_red_s": 2, "min_green_s": 12}),
                     who="ops")
    assert kept["result"] == "applied" and "below ITE" in kept["reason"], kept
    # phase 2's ITE is 1.9 s: the run's 2 s there may go to 1.9 s, phase 3's not below the 2 s it has
    with pytest.raises(ch.ChangeRefused, match=r"^timing: signal 'J2': phase 2 all_red_s 1.5 s below ITE's 1.9 s; "
                                               r"phase 3 all_red_s 1.5 s below the 2 s it started with \(ITE 2.4 s\) "):
        rt.submit(ch.SignalTimingChange(intersection_id="J2", timing={"all_red_s": 1.5}), who="ops")
    rt.run()


def test_the_benchmark_profile_keeps_what_it_allows_at_run_time(tmp_path):
    """RESCO's rules have no all-red and a 3 s yellow: a change to them is no loosening there."""
    rt = _runtime(tmp_path, "bench", "benchmark")
    answer = rt.submit(ch.TimingChange(timing={"all_red_s": 0, "yellow_s": 3.0}), who="ops")
    assert answer["result"] == "applied", answer
    rt.run()
