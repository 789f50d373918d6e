"""Change bodies a live run refuses before they become changes, as a client's bug sends them: a real uvicorn on
127.0.0.1 serving a real live run of `corridor` (SUMO in-process), as `signalwise live` wires them.

Found in a trial: a `"duration_s": NaN` was refused as "Input should be less than or equal to 3600" and logged in
changes.jsonl as a bare `NaN`, which no strict JSON parser reads; a misspelt top-level key (`timnig`) was answered
"body.timing: Field required (and 1 more)", never naming the key that was wrong."""

from __future__ import annotations

import json

import httpx
import pytest
from support.loopback import serving_live

from signalwise.api.times import utc_times
from signalwise.runtime.config import RunConfig
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

LIVE = "/api/v1/live"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client with an operate key, runtime): corridor at 40x, served; stopped after the module."""
    tmp = tmp_path_factory.mktemp("bodies")
    db = f"sqlite:///{tmp / 'db.sqlite'}"
    _info, key = create_key(get_engine(db), "ops", ["read", "operate"])
    with serving_live(Settings(database_url=db), tmp / "live", cfg=RunConfig(scenario="corridor"), speed=40.0,
                      headers={"X-API-Key": key}) as served:
        yield served


def _strict(text: str):
    """JSON as a strict parser (jq, JSON.parse, PostgreSQL's json) reads it: NaN and Infinity are no numbers."""
    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _send(client, method: str, path: str, raw: str) -> httpx.Response:
    """`raw` sent as it is: a JSON encoder would not write the NaN a client's bug sends."""
    return client.request(method, f"{LIVE}{path}", content=raw, headers={"Content-Type": "application/json"})


def _logged(rt) -> list[dict]:
    """changes.jsonl, every line read strictly."""
    return [_strict(line) for line in (rt.run_dir / "changes.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("method", "path", "raw", "where", "sent"), [
    ("POST", "/override", '{"intersection_id": "J2", "action": "hold", "phase_number": 1, "duration_s": NaN}',
     "body.duration_s", ["duration_s"]),
    ("POST", "/override", '{"intersection_id": "J2", "action": "call", "phase_number": 2, "duration_s": Infinity}',
     "body.duration_s", ["duration_s"]),
    ("PUT", "/config/timing", '{"timing": {"all_red_s": NaN}}', "body.timing: all_red_s", ["timing", "all_red_s"]),
    ("PUT", "/config/timing/intersections/J2", '{"timing": {"yellow_s": -Infinity}}', "body.timing: yellow_s",
     ["timing", "yellow_s"]),
], ids=["override NaN", "override Infinity", "timing NaN", "one signal's timing -Infinity"])
def test_a_non_finite_number_is_refused_as_such_and_logged_as_strict_json(served, method, path, raw, where, sent):
    client, rt = served
    r = _send(client, method, path, raw)
    assert r.status_code == 422, r.text
    assert r.json()["message"] == f"{where}: Input should be a finite number", r.json()
    logged = _logged(rt)  # every line, not only this one: none may hold a bare NaN
    entry = next(e for e in reversed(logged) if e["payload"].get("request") == f"{method} {path.lstrip('/')}")
    assert entry["result"] == "refused" and entry["reason"] == r.json()["message"], entry
    value = entry["payload"]["body"]
    for key in sent:
        value = value[key]
    assert value == raw.split(": ")[-1].rstrip("}"), entry  # what was sent, as text: "NaN", "Infinity", ...
    listed = client.get(f"{LIVE}/changes", params={"limit": 1000}).json()
    # the file keeps the run's local wall-clock offset; the API writes every instant in UTC (`api.times`)
    assert utc_times(entry) in listed, "GET /changes says what changes.jsonl says"


@pytest.mark.parametrize(("method", "path", "body", "message"), [
    ("PUT", "/config/timing", {"timnig": {"min_green_s": 8}}, "body.timnig: not a field; did you mean timing?"),
    ("PUT", "/config/timing", {"timing": {"min_green_s": 8}, "based_on_revison": 0},
     "body.based_on_revison: not a field; did you mean based_on_revision?"),
    ("PUT", "/config/timing/intersections/J2", {"timnig": {"min_green_s": 8}},
     "body.timnig: not a field; did you mean timing?"),
    ("PUT", "/config/shield", {"sheild": {}}, "body.sheild: not a field; did you mean shield?"),
    ("POST", "/override", {"intersection_id": "J2", "action": "hold", "phase_number": 1, "duraton_s": 30},
     "body.duraton_s: not a field; did you mean duration_s?"),
    ("POST", "/changes", {"kind": "override", "intersection_id": "J2", "action": "hold", "phase_number": 1,
                          "duraton_s": 30}, "body.override.duraton_s: not a field; did you mean duration_s?"),
    ("PUT", "/config/timing", {"timing": {}, "colour": "blue"},
     "body.colour: not a field; the fields here: kind, timing, based_on_revision"),
], ids=["timing", "timing's revision", "one signal's timing", "shield", "override", "change", "no near field"])
def test_a_key_the_body_has_no_field_for_is_named_with_the_field_it_likely_meant(served, method, path, body,
                                                                                   message):
    client, rt = served
    r = client.request(method, f"{LIVE}{path}", json=body)
    assert r.status_code == 422, r.text
    # the misspelt key's error alone: the field it stands for is missing because of it, not as one more mistake
    assert r.json()["message"] == message, r.json()
    extra = r.json()["detail"][0]
    assert extra["type"] == "extra_forbidden" and extra["loc"][-1] in message, r.json()["detail"]
    logged = _logged(rt)
    assert any(e["result"] == "refused" and e["reason"] == message for e in logged), logged[-3:]


def test_a_refused_body_holding_nan_anywhere_is_logged_as_strict_json(served):
    """A NaN where no number is checked (a key the body has no field for) still reaches the change log: as the
    text "NaN", in the file and the list alike."""
    client, rt = served
    r = _send(client, "POST", "/override", '{"intersection_id": "J3", "action": "hold", "phase_number": 1, '
                                           '"duration_s": 30, "weight": NaN}')
    assert r.status_code == 422, r.text
    entry = next(e for e in reversed(_logged(rt)) if e["payload"].get("intersection_id") == "J3")
    assert entry["result"] == "refused" and entry["payload"]["body"]["weight"] == "NaN", entry
    assert utc_times(entry) in client.get(f"{LIVE}/changes", params={"limit": 1000}).json()
