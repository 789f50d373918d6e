"""The MQTT topic prefix is a setting: `mqtt_topic_prefix` in the run configuration (`--config`).

Found in a trial: `signalwise live --mqtt` always subscribed to `signalwise/+/detectors`, so two corridors whose
networks both use ids J1…J5 could not share a broker. Here a real `signalwise live` against the Mosquitto on
127.0.0.1:1883 (skipped when it does not answer), configured with a prefix of its own, takes a message published
under that prefix; a prefix with a wildcard is refused by name.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from support.mqtt import broker_unavailable_reason, feed_live_on_own_prefix, live_status
from support.waiting import until

from signalwise.runtime.config import RunConfig


def test_a_prefix_with_a_wildcard_or_an_empty_level_is_refused():
    assert RunConfig(mqtt_topic_prefix="city/corridor-a").mqtt_topic_prefix == "city/corridor-a"
    assert RunConfig().mqtt_topic_prefix == "signalwise"
    for bad in ("city/+", "#", "city//a", "a/"):
        with pytest.raises(ValidationError, match="no MQTT topic prefix"):
            RunConfig(mqtt_topic_prefix=bad)




@pytest.mark.slow
def test_a_live_run_subscribes_under_its_configured_prefix(tmp_path):
    reason = broker_unavailable_reason()
    if reason:
        pytest.skip(reason)

    with feed_live_on_own_prefix(tmp_path, levels="/corridor-a") as (_proc, base, prefix, pub):
        t = live_status(base)["sim_time_s"]
        message = {"device_id": "J1", "channel": 1, "event": "on", "sim_time_s": t}
        pub.publish(f"{prefix}/J1/detectors", json.dumps(message), qos=1).wait_for_publish(5)
        assert until(lambda: live_status(base)["feeds"]["mqtt"]["accepted"] == 1, 15), live_status(base)["feeds"]
        mqtt_status = live_status(base)["feeds"]["mqtt"]
        assert (mqtt_status["received"], mqtt_status["retained"], mqtt_status["dropped"]) == (1, 0, 0), mqtt_status
