"""Changing the safety timing of a live run while others change it too: a real uvicorn on 127.0.0.1 serving a real
live run of `corridor` (SUMO in-process), as `signalwise live` wires them.

One signal's change merges into the map in force when the loop applies it, so two operators changing two
signals at once both keep theirs; a change sent with the revision it was made from is refused (409, nothing
applied) when the timing changed since; and the run's evidence still audits with 0 violations.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote

import httpx
import pytest
from support.loopback import serving_live

from signalwise.analytics.safety_audit import audit_run
from signalwise.runtime.config import RunConfig
from signalwise.sim.scenario import load
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

TIMING = "/api/v1/live/config/timing"


@pytest.fixture
def running(tmp_path):
    """corridor at 40x, served; yields (client with an operate key, runtime); stopped and joined after."""
    yield from _serving(tmp_path, RunConfig(scenario="corridor"))


def _serving(tmp_path, cfg: RunConfig):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _info, key = create_key(get_engine(db), "ops", ["read", "operate"])
    with serving_live(Settings(database_url=db), tmp_path / "live", cfg=cfg, speed=40.0,
                      headers={"X-API-Key": key}) as served:
        yield served


def _config(client) -> dict:
    r = client.get("/api/v1/live/config")
    assert r.status_code == 200, r.text
    return r.json()


def _timing_log(client) -> list[dict]:
    return [c for c in client.get("/api/v1/live/changes", params={"limit": 1000}).json()
            if c["kind"] in ("timing", "signal_timing")]


def _per_phase(timing, interval: str) -> set[float]:
    """The change interval (`yellow` or `all_red`) each phase shows when it ends, seconds."""
    return {getattr(timing, f"{interval}_of")(p) for p in range(len(timing.min_green_s))}


def _audited_after_every_signal_took(client, rt, timeout_s: float = 60) -> None:
    """Wait (bounded) until every signal runs the newest revision, stop the run, and audit its evidence."""
    deadline = time.monotonic() + timeout_s
    while True:
        cfg = _config(client)
        if set(cfg["signal_timing_revisions"].values()) == {cfg["timing_revision"]}:
            break
        assert time.monotonic() < deadline, f"signals still wait for revision {cfg['timing_revision']}: {cfg}"
        time.sleep(0.2)
    rt.stop()
    deadline = time.monotonic() + 20
    while "finished" not in json.loads((rt.run_dir / "run.json").read_text()):  # the evidence flushed, not only
        assert time.monotonic() < deadline, "the live loop did not stop"         # the loop left
        time.sleep(0.05)
    report = audit_run(rt.run_dir)
    assert report.ok and report.checked["min_green"] > 0, [str(v) for v in report.violations[:5]]


def test_two_operators_changing_two_signals_at_once_both_keep_their_change(running):
    """Both read revision 0 and send their signal's change at the same moment, each with that revision: both are
    applied (neither's signal changed since), both are in force, and the audit finds no violation."""
    client, rt = running
    first, second = (i.id for i in rt.stepper.intersections[:2])
    read = _config(client)
    assert read["timing_revision"] == 0 and read["timing"]["per_intersection"] == {}
    go = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def operator(tls: str, own: dict) -> None:
        go.wait(timeout=10)
        answers[tls] = client.put(f"{TIMING}/intersections/{tls}",
                                  json={"timing": own, "based_on_revision": read["timing_revision"]})

    threads = [threading.Thread(target=operator, args=(first, {"all_red_s": 3})),
               threading.Thread(target=operator, args=(second, {"min_green_s": 8, "yellow_s": 4}))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert {tls: r.status_code for tls, r in answers.items()} == {first: 200, second: 200}, \
        {tls: r.text for tls, r in answers.items()}
    assert {r.json()["payload"]["intersection_id"] for r in answers.values()} == {first, second}

    after = _config(client)
    assert after["timing_revision"] == 2
    assert after["timing"]["per_intersection"] == {first: {"all_red_s": 3.0},
                                                   second: {"min_green_s": 8.0, "yellow_s": 4.0}}
    assert {k: v for k, v in after["timing"].items() if k != "per_intersection"} == \
        {k: v for k, v in read["timing"].items() if k != "per_intersection"}  # the defaults untouched
    assert [(c["result"], c["who"]) for c in _timing_log(client)] == [("applied", "ops"), ("applied", "ops")]

    # a third change of the first signal, from what was read before: its own values changed since, so refused
    stale = client.put(f"{TIMING}/intersections/{first}",
                       json={"timing": {"all_red_s": 3}, "based_on_revision": read["timing_revision"]})
    assert stale.status_code == 409, stale.text
    assert stale.json()["timing_revision"] == 2
    assert f"{first}'s own timing was changed at revision" in stale.json()["message"]
    assert _config(client)["timing"] == after["timing"]
    _audited_after_every_signal_took(client, rt)
    # each signal runs what it was given: its own values over the defaults
    timing = {tls: sh.inter.timing for tls, sh in rt.stepper.shields.items()}
    assert _per_phase(timing[first], "all_red") == {3.0} and _per_phase(timing[second], "yellow") == {4.0}
    assert min(timing[second].min_green_s) == 8.0


def test_a_whole_map_change_from_a_stale_revision_is_refused_and_nothing_of_it_applied(running):
    """A writer that read revision 0 sends the whole map after another operator changed one signal: 409 with the
    revision in force, the other operator's change kept, the refusal logged. Sent from the revision in force, it
    is applied; sent with no revision, it is applied as before (and replaces the map, as documented)."""
    client, rt = running
    first, second = (i.id for i in rt.stepper.intersections[:2])
    read = _config(client)
    made = client.put(f"{TIMING}/intersections/{first}", json={"timing": {"all_red_s": 3}})
    assert made.status_code == 200, made.text
    in_force = _config(client)
    assert in_force["timing_revision"] == 1

    stale = client.put(TIMING, json={"timing": {"min_green_s": 7, "per_intersection": {second: {"all_red_s": 4}}},
                                     "based_on_revision": read["timing_revision"]})
    assert stale.status_code == 409, stale.text
    body = stale.json()
    assert body["timing_revision"] == 1
    assert body["message"].startswith("change refused: the timing was changed after revision 0 (timing revision 1 "
                                      "in force); nothing was applied")
    # nothing of it: neither the default nor the map. A signal's own revision and its derived clearances move on by
    # themselves when it reaches its next green (`first`'s change above may do so between the two reads); `second`,
    # which only the stale map would have changed, keeps its clearances
    after, moving = _config(client), ("signal_timing_revisions", "derived")
    assert {k: v for k, v in after.items() if k not in moving} == {k: v for k, v in in_force.items() if k not in moving}
    assert after["derived"][second] == in_force["derived"][second]
    # every signal takes the revision in force at its next green, `second` too (that revision left its values
    # alone): never one past it, which only the stale map would have made
    assert after["signal_timing_revisions"][second] in {in_force["signal_timing_revisions"][second],
                                                        in_force["timing_revision"]}
    refused = _timing_log(client)[-1]
    assert (refused["kind"], refused["result"], refused["payload"]["based_on_revision"]) == ("timing", "refused", 0)
    # a revision that was never made is refused the same way
    assert client.put(TIMING, json={"timing": {"min_green_s": 7}, "based_on_revision": 5}).status_code == 409
    # a revision that is not a JSON integer is a client's fault (422 naming the field), not revision 1 or 3
    for not_a_revision in (True, "1", 1.0):
        for method, url, body in (
                (client.put, TIMING, {"timing": {"min_green_s": 7}}),
                (client.put, f"{TIMING}/intersections/{second}", {"timing": {"all_red_s": 4}}),
                (client.post, "/api/v1/live/changes",
                 {"kind": "signal_timing", "intersection_id": second, "timing": {"all_red_s": 4}})):
            refused = method(url, json={**body, "based_on_revision": not_a_revision})
            assert refused.status_code == 422, (url, not_a_revision, refused.text)
            assert "based_on_revision" in refused.text, refused.text
    # DELETE's is in the query string, text: decimal digits only, so `1.0` or `+1` is not revision 1, `1_0` not 10
    for not_a_revision in ("true", "1.0", "+1", " 1", "1_0", "", "-1"):
        refused = client.delete(f"{TIMING}/intersections/{first}", params={"based_on_revision": not_a_revision})
        assert refused.status_code == 422, (not_a_revision, refused.text)
        assert "based_on_revision" in refused.text, refused.text
    now = _config(client)  # (each signal's own revision moves on by itself, at its next green)
    assert (now["timing"], now["timing_revision"]) == (in_force["timing"], in_force["timing_revision"])
    # a stale change whose values no longer fit what is in force is the stale read (409: read again), not a fault
    # of its values (422): removing the own timing another operator removed meanwhile, from the same read
    assert client.delete(f"{TIMING}/intersections/{first}", params={"based_on_revision": 1}).status_code == 200
    again = client.delete(f"{TIMING}/intersections/{first}", params={"based_on_revision": 1})
    assert again.status_code == 409, again.text
    assert client.put(f"{TIMING}/intersections/{first}", json={"timing": {"all_red_s": 3},
                                                                "based_on_revision": 2}).status_code == 200
    in_force = _config(client)
    assert in_force["timing_revision"] == 3

    # from the revision in force: applied, the defaults' key merged, the signal's own kept
    ok = client.put(TIMING, json={"timing": {"min_green_s": 7}, "based_on_revision": 3})
    assert ok.status_code == 200, ok.text
    assert ok.json()["payload"]["based_on_revision"] == 3
    now = _config(client)
    assert now["timing_revision"] == 4 and now["timing"]["min_green_s"] == 7.0
    assert now["timing"]["per_intersection"] == {first: {"all_red_s": 3.0}}

    # no revision: today's behaviour, its per_intersection replaces the map (and is logged as before)
    bare = client.put(TIMING, json={"timing": {"per_intersection": {second: {"all_red_s": 4}}}})
    assert bare.status_code == 200, bare.text
    assert bare.json()["payload"] == {"kind": "timing", "timing": {"per_intersection": {second: {"all_red_s": 4}}}}
    assert _config(client)["timing"]["per_intersection"] == {second: {"all_red_s": 4.0}}
    _audited_after_every_signal_took(client, rt)


def test_one_signals_timing_is_validated_as_the_whole_map_is_and_can_be_removed(running):
    """An unknown signal is a 404 naming it; a value the run configuration refuses is a 422 with its reason; an
    empty change and removing what a signal does not have are 422; nothing of any is applied. Removing a signal's
    own values (DELETE) puts it back on the defaults and keeps the other signals' own."""
    client, rt = running
    first, second = (i.id for i in rt.stepper.intersections[:2])
    before = _config(client)
    started_all_red_s = _per_phase(rt.stepper.shields[first].inter.timing, "all_red")  # derived: its geometry
    assert started_all_red_s != {3.0}

    r = client.put(f"{TIMING}/intersections/NOPE", json={"timing": {"all_red_s": 3}})
    assert r.status_code == 404, r.text
    assert "unknown intersection 'NOPE'" in r.json()["message"]
    assert client.delete(f"{TIMING}/intersections/NOPE").status_code == 404
    r = client.put(f"{TIMING}/intersections/{first}", json={"timing": {"min_green_s": 50, "max_green_s": 40}})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == (f"change refused: timing: per_intersection.{first}: min_green_s (50) exceeds "
                                   "max_green_s (40)")
    r = client.put(f"{TIMING}/intersections/{first}", json={"timing": {"yellow_s": 2}})  # under the safety profile
    assert r.status_code == 422 and "yellow_s" in r.json()["message"], r.text
    r = client.put(f"{TIMING}/intersections/{first}", json={"timing": {"green_s": 9}})
    assert r.status_code == 422 and "unknown timing key(s) green_s" in r.json()["message"], r.text
    r = client.put(f"{TIMING}/intersections/{first}", json={"timing": {}})
    assert r.status_code == 422 and "timing is empty" in r.json()["message"], r.text
    r = client.delete(f"{TIMING}/intersections/{first}")
    assert r.status_code == 422 and f"{first} has no timing of its own to remove" in r.json()["message"], r.text
    assert _config(client) == before
    assert {c["result"] for c in _timing_log(client)} == {"refused"}

    # through the changes route too, as every named route's change
    r = client.post("/api/v1/live/changes", json={"kind": "signal_timing", "intersection_id": first,
                                                  "timing": {"all_red_s": 3}})
    assert r.status_code == 200, r.text
    assert client.put(f"{TIMING}/intersections/{second}", json={"timing": {"all_red_s": 4}}).status_code == 200
    # removal from a stale revision of that signal: refused; from the one in force: applied, the other kept
    r = client.delete(f"{TIMING}/intersections/{first}", params={"based_on_revision": 0})
    assert r.status_code == 409 and r.json()["timing_revision"] == 2, r.text
    r = client.delete(f"{TIMING}/intersections/{first}", params={"based_on_revision": 2})
    assert r.status_code == 200, r.text
    assert r.json()["payload"] == {"kind": "signal_timing", "intersection_id": first, "timing": None,
                                   "based_on_revision": 2}
    after = _config(client)
    assert after["timing_revision"] == 3 and after["timing"]["per_intersection"] == {second: {"all_red_s": 4.0}}
    _audited_after_every_signal_took(client, rt)
    # the signal whose own values were removed runs the defaults' derived all-red again, as it started
    assert _per_phase(rt.stepper.shields[first].inter.timing, "all_red") == started_all_red_s
    assert _per_phase(rt.stepper.shields[second].inter.timing, "all_red") == {4.0}


def test_a_signal_whose_id_holds_a_slash_takes_its_own_timing(tmp_path):
    """A device id may hold `/` (it then sends over HTTP, not MQTT): the page encodes it (%2F), which the server
    decodes before routing, so the route takes the rest of the path as the id."""
    corridor = load("corridor")
    net = tmp_path / "slash.net.xml"
    net.write_text(corridor.net_file.read_text().replace('<tlLogic id="J1"', '<tlLogic id="J/1"')
                   .replace('tl="J1"', 'tl="J/1"'))
    served = _serving(tmp_path, RunConfig(net=str(net), routes=[str(corridor.route_files[0])]))
    client, rt = next(served)
    try:
        assert "J/1" in rt.stepper.by_id
        r = client.put(f"{TIMING}/intersections/{quote('J/1', safe='')}", json={"timing": {"all_red_s": 3}})
        assert r.status_code == 200, r.text
        assert _config(client)["timing"]["per_intersection"] == {"J/1": {"all_red_s": 3.0}}
        assert client.delete(f"{TIMING}/intersections/{quote('J/1', safe='')}").status_code == 200
        assert _config(client)["timing"]["per_intersection"] == {}
    finally:
        served.close()


def test_a_clearance_the_step_rounds_up_is_said_in_the_changes_answer_and_log_as_a_run_says_it(running):
    """A live change's yellow of 4.5 s runs as 5 s at the corridor's 1 s steps: its answer and its log entry say so
    in the words a run's start says it (`step_rounding.clearance_rounding_warnings`), for its signal alone; a whole
    change names every signal its value runs longer at; a value in whole steps says nothing."""
    client, rt = running
    assert rt.cfg.step_length_s == 1.0
    one = client.put(f"{TIMING}/intersections/J3", json={"timing": {"yellow_s": 4.5}})
    assert one.status_code == 200, one.text
    assert one.json()["reason"] == ("timing.per_intersection.J3.yellow_s 4.5 s runs as 5 s at signal(s) J3: at 1 s "
                                    "steps each yellow is shown in whole steps, rounded up (step_length_s 0.5 shows "
                                    "it exactly)")
    assert _timing_log(client)[-1]["reason"] == one.json()["reason"]
    whole = client.put(TIMING, json={"timing": {"all_red_s": 3.5}})
    assert whole.status_code == 200, whole.text
    # what it leaves in force, as a run started with it would say it: J3's own yellow stays beside the new default
    assert whole.json()["reason"].split("; ") == [
        "timing.all_red_s 3.5 s runs as 4 s at signal(s) J1, J2, J3, J4, J5: at 1 s steps each red clearance is "
        "shown in whole steps, rounded up (step_length_s 0.5 shows it exactly)", one.json()["reason"]]
    exact = client.put(TIMING, json={"timing": {"all_red_s": 3, "per_intersection": {"J3": {"yellow_s": 5}}}})
    assert exact.status_code == 200 and exact.json()["reason"] == "", exact.text
