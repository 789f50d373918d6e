"""A run fed by detector feeds (`--field none`) counts its vehicles from the feed, and says what it cannot measure.

Found in an operator's trial: fed counts on every stop bar, the live run's interval records, its
`/api/v1/live/intervals` and the store still read 0 vehicles passed, 0 veh/h and a mean wait of 0 s, because
the records only counted SUMO's own stop-bar passages. Here a real run without a simulator, its API served on
127.0.0.1, is fed a known number of vehicles (counts, and on-events on a channel that sends no counts) and
its records, intervals and stored figures must hold exactly those; the waits and speeds no point detector
measures must be null, not 0.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import socket
import threading
import time
from collections import defaultdict
from types import SimpleNamespace

import httpx
import pytest
from support.waiting import until

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.records import LiveRecords, network_figures

INTERVAL_S = 20.0
DURATION_S = 40.0  # two intervals: the split between them is what is checked, not how many
#: no message is stamped this close to an interval's boundary: it could be taken by the loop after the close
#: (at the run's speed of 5, 1.2 s of wall time for a POST to arrive on a loaded machine)
BOUNDARY_MARGIN_S = 6.0


def _wait_running(base: str) -> None:
    def running() -> bool:
        try:
            return bool(httpx.get(f"{base}/api/v1/live/status", timeout=2).json().get("running"))
        except (httpx.HTTPError, ValueError):
            return False

    assert until(running, 30, every_s=0.05), "the live run never started"


@pytest.mark.slow
def test_a_feed_run_counts_the_vehicles_fed_and_leaves_what_it_cannot_measure_null(tmp_path):
    from signalwise.api.live_command import _serve
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.store import get_engine
    from signalwise.store.keys import create_key
    from signalwise.store.live import LiveStoreWriter

    url = f"sqlite:///{tmp_path / 'api.db'}"
    key = {"X-API-Key": create_key(get_engine(url), "feeder", ["ingest", "read"])[1]}
    run_dir = tmp_path / "run"
    store = LiveStoreWriter(url, run_dir.name, tmp_path / "store-buffer", 1_000_000)
    rt = LiveRuntime(RunConfig(scenario="corridor", interval_s=INTERVAL_S),
                     LiveOptions(speed=5.0, duration_s=DURATION_S, field="none", sink="shadow"), run_dir,
                     store=store)
    rt.open()
    inters = {i.id: i for i in rt.field.intersections}
    direction = rt.stepper.approach_direction
    begin_s = rt.stepper.t
    stopbars = {tls: [d for d in i.detectors if d.kind == "stopbar"] for tls, i in inters.items()}
    advance = {tls: [d for d in i.detectors if d.kind == "advance"] for tls, i in inters.items()}
    first, last = sorted(inters)[0], sorted(inters)[-1]
    # on the first signal one stop bar sends on/off events only, another sends counts and events (the same
    # vehicles: counted once); on the last signal one approach never reports (its vehicles are unknown)
    events_only, both = stopbars[first][0], stopbars[first][1]
    silent_dir = direction[stopbars[last][0].lane]
    counted = {tls: [d for d in dets if d is not events_only and (tls != last or direction[d.lane] != silent_dir)]
               for tls, dets in stopbars.items()}
    assert len(counted[first]) >= 2 and all(len(d) >= 2 for d in counted.values()), counted

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, server_thread = _serve(rt, "127.0.0.1", port, url)
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(7)
    #: (interval index, signal, direction) -> vehicles fed
    fed: dict[tuple[int, str, str], int] = defaultdict(int)
    posted_stamps: set[float] = set()
    #: intervals whose vehicles a POST answered too late (a loaded machine) may have moved to the next one
    unsure: set[int] = set()
    try:
        _wait_running(base)
        while loop.is_alive():
            t = round(rt.stepper.t, 1)
            k, into = divmod(t - begin_s, INTERVAL_S)
            if t in posted_stamps or t - begin_s < 1.0 or not BOUNDARY_MARGIN_S <= into <= INTERVAL_S - BOUNDARY_MARGIN_S:
                time.sleep(0.02)
                continue
            posted_stamps.add(t)
            batch = []
            for tls, dets in counted.items():
                for d in dets:
                    n = rng.randint(0, 3)
                    batch.append({"device_id": tls, "channel": d.channel, "count_veh": n, "occupancy": 0.1 * n,
                                  "interval_s": 2.0, "sim_time_s": t})
                    fed[(int(k), tls, direction[d.lane])] += n
                for d in advance[tls]:  # upstream of the stop bars: the same vehicles, never counted again
                    batch.append({"device_id": tls, "channel": d.channel, "count_veh": 3, "occupancy": 0.3,
                                  "interval_s": 2.0, "sim_time_s": t})
            on_t = round(t - 0.5, 1)  # one vehicle over each of the two evented stop bars
            batch += [{"device_id": first, "channel": d.channel, "event": e, "sim_time_s": on_t + dt_s}
                      for d in (events_only, both) for e, dt_s in (("on", 0.0), ("off", 0.3))]
            fed[(int(k), first, direction[events_only.lane])] += 1
            answer = httpx.post(f"{base}/api/v1/live/feeds/detectors", json=batch, headers=key, timeout=5)
            if answer.status_code == 422 and not loop.is_alive():
                break
            assert answer.status_code == 200, answer.text
            if rt.stepper.t - begin_s > (k + 1) * INTERVAL_S - 1.0:  # taken so late the loop may have closed k
                unsure |= {int(k), int(k) + 1}  # its vehicles may count in the next interval: only totals hold
            if len(posted_stamps) == 2:  # an HTTP retry of the same batch: nothing is counted twice
                again = httpx.post(f"{base}/api/v1/live/feeds/detectors", json=batch, headers=key, timeout=5)
                assert again.status_code == 200, again.text
        loop.join(30)
        intervals = httpx.get(f"{base}/api/v1/live/intervals", headers=key, timeout=5).json()
    finally:
        rt.stop()
        loop.join(30)
        store.close()
        server.should_exit = True
        server_thread.join(5)
    assert rt.status_text == "complete", rt.status_text

    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    n_intervals = int(DURATION_S // INTERVAL_S)
    assert len(records) == n_intervals * len(inters)
    stamps = sorted({r["timestamp"] for r in records})
    expected_total = defaultdict(int)
    for r in records:
        k = stamps.index(r["timestamp"])
        tls = r["intersection_id"]
        for s in r["signals"]:
            want = fed.get((k, tls, s["direction"]))
            if tls == last and s["direction"] == silent_dir:
                assert s["vehicles_crossed"] is None, s  # nothing reported: unknown, not 0
            elif k not in unsure:
                assert s["vehicles_crossed"] == (want or 0), (k, tls, s)
            assert s["avg_wait_time"] is None and s["vehicle_counts"] is None, s
            assert s["emergency_vehicle_present"] is None, s
        m = r["metrics"]
        want_total = sum(v for (kk, tt, _d), v in fed.items() if (kk, tt) == (k, tls))
        if k not in unsure:
            assert m["total_vehicles_passed"] == want_total, (k, tls, m)
        expected_total[k] += want_total
        # a point detector measures neither waits nor speeds: null, never a 0 that reads "nobody waited"
        assert m["avg_wait_time_all_sides"] is None and m["avg_speed"] is None, m
        assert m["fuel_saved"] is None and m["co2_saved"] is None, m
        assert 0.0 <= m["throughput"] <= 1.0
    assert sum(expected_total.values()) > 100

    # the dashboard's history: vehicles and flow as fed, the delay proxy null (a gap in its chart, not a 0)
    got = intervals["intervals"]
    sure = [k for k in range(n_intervals) if k not in unsure]
    assert [got[k]["vehicles_passed"] for k in sure] == [expected_total[k] for k in sure], got
    assert [got[k]["flow_vph"] for k in sure] == [round(expected_total[k] * 3600.0 / INTERVAL_S, 1) for k in sure], got
    if n_intervals - 1 not in unsure:  # none taken after the run's last close: every vehicle fed is counted once
        assert sum(i["vehicles_passed"] or 0 for i in got) == sum(expected_total.values()), got
    assert all(i["mean_wait_s"] is None for i in got), got

    # the store: every record, its vehicles as fed; the run's throughput is the mean served share of them
    from signalwise.store import queries

    (run,) = [r for r in queries.run_table(get_engine(url)) if r["simulation_id"] == run_dir.name]
    metrics = run["metrics"]
    if n_intervals - 1 not in unsure:
        assert metrics["total_vehicles_passed"] == sum(expected_total.values()), metrics
    shares = [r["metrics"]["throughput"] for r in records]
    assert metrics["throughput"] == pytest.approx(sum(shares) / len(shares), abs=1e-3), metrics
    assert rt.feed.stats()["repeated_counts"] > 0  # the retried batch's counts were taken, not counted


# ---------------------------------------------------------------------------
# the records alone
# ---------------------------------------------------------------------------


#: one signal, two approaches of two lanes each; stop-bar channels 1-4, an advance detector on channel 5
_LANES = {"n_0": "north", "n_1": "north", "e_0": "east", "e_1": "east"}
_STOPBARS = {("J1", ch): lane for ch, lane in enumerate(_LANES, start=1)}


def _records(feed: bool = True) -> LiveRecords:
    movements = [SimpleNamespace(in_lane=lane, is_crosswalk=False, link_index=k) for k, lane in enumerate(_LANES)]
    inter = SimpleNamespace(id="J1", movements=movements)
    return LiveRecords([inter], dict(_LANES), 60.0, 0.0, dt.datetime(2025, 6, 1, 8), "sim",
                       feed_stopbars=_STOPBARS if feed else None)


def _approaches(record: dict) -> dict[str, int | None]:
    return {s["direction"]: s["vehicles_crossed"] for s in record["signals"]}


def test_a_channel_that_sends_counts_is_counted_by_them_and_one_with_events_only_by_its_on_events():
    rec = _records()
    rec.feed_count("J1", 1, 4, 10.0)
    rec.feed_on("J1", 1, 9.0)  # the same vehicles as channel 1's count: not counted again
    rec.feed_on("J1", 2, 11.0)
    rec.feed_on("J1", 2, 12.0)
    rec.feed_count("J1", 5, 9, 10.0)  # not a stop-bar detector: the same vehicles upstream
    (record,) = rec.close_interval()
    assert _approaches(record) == {"north": 6, "east": None}
    assert record["metrics"]["total_vehicles_passed"] == 6
    assert network_figures([record], 60.0, 60.0)["flow_vph"] == 360.0


def test_a_camera_zone_standing_for_an_approachs_lanes_counts_one_vehicle_per_onset():
    rec = _records()
    for ch in (3, 4):  # one zone over both eastern lanes: its 82 is logged on each lane's channel
        rec.feed_on("J1", ch, 20.0, approach_wide=True)
    rec.feed_on("J1", 3, 25.0, approach_wide=True)
    (record,) = rec.close_interval()
    assert _approaches(record) == {"north": None, "east": 2}


def test_data_stamped_after_the_interval_count_in_the_next_and_a_silent_interval_is_unknown():
    from signalwise.runtime.live.records import store_record

    rec = _records()
    rec.feed_count("J1", 1, 2, 62.0)  # a sender up to 5 s ahead of the loop
    (first,) = rec.close_interval()
    assert first["metrics"]["total_vehicles_passed"] is None and first["metrics"]["throughput"] is None
    assert store_record(first) is None  # the store has no "unknown": left out rather than stored as 0
    figures = network_figures([first], 60.0, 60.0)
    assert figures["vehicles_passed"] is None and figures["flow_vph"] is None and figures["mean_wait_s"] is None
    (second,) = rec.close_interval()
    assert second["metrics"]["total_vehicles_passed"] == 2
    stored = store_record(second)
    # stored as measured: the unmeasured waits and classes stay null (NULL in the store), never 0
    assert stored["metrics"]["avg_wait_time_all_sides"] is None and stored["signals"][0]["vehicle_counts"] is None


def test_a_simulator_run_takes_no_feed_data_so_no_vehicle_is_counted_twice():
    from signalwise.runtime.live.records import store_record

    rec = _records(feed=False)
    rec.passage("J1", "n_0", "passenger")
    rec.feed_count("J1", 1, 5, 10.0)
    rec.feed_on("J1", 1, 11.0)
    (record,) = rec.close_interval()
    assert _approaches(record) == {"north": 1, "east": 0}
    assert record["metrics"]["avg_wait_time_all_sides"] == 0.0  # a simulator run's records are as they were
    assert store_record(record) == record
