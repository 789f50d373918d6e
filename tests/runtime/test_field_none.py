"""`--field none` reads the network file itself: the lane lengths and zones it gives the loop are SUMO's.

Each network is loaded by SUMO alone (no routes) and read
with sumolib; the feed-only field must answer `lane_zones` and
`lane_length_m` for the signals' lanes exactly as the SUMO backend does, or
max-pressure would weigh other lanes in the field than in the simulation.
The Ingolstadt networks have entries a metre long, measured with the lanes
behind them.
"""

from __future__ import annotations

import importlib.util

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.field_none import FeedField, read_lane_network
from signalwise.runtime.loop import open_field, resolve_scenario, sumo_options
from signalwise.sim.lane_zones import ZONE_REACH_M

REACH_M = (ZONE_REACH_M, 1000.0)

_RESCO = pytest.mark.skipif(importlib.util.find_spec("sumo_rl") is None,
                            reason="RESCO networks need the 'resco' extra (sumo-rl)")
#: (scenario, whether lanes other than the signals' own fall in zones): every corridor lane starts or ends
#: at a signal, so its zones are empty and only its lengths are compared
NETWORKS = [("corridor", False), pytest.param("resco:ingolstadt7", True, marks=_RESCO),
            pytest.param("resco:ingolstadt21", True, marks=_RESCO)]


@pytest.mark.parametrize(("scenario", "zoned"), NETWORKS)
def test_the_feed_only_field_gives_the_lane_zones_and_lengths_sumo_gives(scenario, zoned):
    cfg = RunConfig(scenario=scenario)
    sc = resolve_scenario(cfg)
    fld = open_field(cfg, sc, sumo_options(cfg, sc, with_routes=False, end_s=sc.begin_s + 1))
    try:
        roads = [m for i in fld.intersections for m in i.movements if not m.is_crosswalk]
        in_lanes = sorted({m.in_lane for m in roads})
        out_lanes = sorted({m.out_lane for m in roads})
        # as the loop asks, and far enough to walk a good part of the network
        sumo_zones = {reach_m: fld.backend.lane_zones(in_lanes, out_lanes, reach_m) for reach_m in REACH_M}
        sumo_split = {reach_m: fld.backend.lane_split_zones(in_lanes, reach_m) for reach_m in REACH_M}
        lanes = {*in_lanes, *out_lanes, *(lane for side in sumo_zones[REACH_M[-1]] for zone in side.values()
                                          for lane, _ in zone),
                 *(lane for zone in sumo_split[REACH_M[-1]].values() for lane, _, _ in zone)}
        sumo_length_m = {lane: fld.backend.lane_length_m(lane) for lane in lanes}
    finally:
        fld.backend.close()
    feed_only = FeedField(None, cfg.step_length_s, sc.begin_s, read_lane_network(sc.net_file))
    assert any(zone for side in sumo_zones[REACH_M[-1]] for zone in side.values()) == zoned
    for reach_m, zones in sumo_zones.items():
        assert feed_only.lane_zones(in_lanes, out_lanes, reach_m) == zones, reach_m
        assert feed_only.lane_split_zones(in_lanes, reach_m) == sumo_split[reach_m], reach_m
    assert {lane: feed_only.lane_length_m(lane) for lane in lanes} == sumo_length_m
