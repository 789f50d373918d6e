"""The phase-score features over lane zones: a stop-line lane shorter than a car does not hide its queue.

Movements of `make_intersection` (tests/control/shield_fixtures.py):
phase 0: n_in_0 -> s_out_0, s_in_0 -> n_out_0
phase 1: e_in_0 -> w_out_0, w_in_0 -> e_out_0 (and a crosswalk)
phase 2: e_in_1 -> s_out_1, its only movement

Here e_in_1 is 0.9 m long, as ingolstadt7's western entry to gneJ143: its queue stands on e_up_1 behind it.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from shield_fixtures import make_intersection

from signalwise.control.base import ControlContext, make
from signalwise.control.learning.controller import PHASE_SCORE, ModelUnavailable
from signalwise.control.learning.phase_score import (
    ALL_FEATURES,
    FEATURES,
    PhaseFeatures,
    PhaseScoreController,
    max_pressure_weights,
)
from signalwise.control.learning.qtable import Model, save_model
from signalwise.control.max_pressure import MaxPressureController
from signalwise.core.types import LaneState, Observation, SignalStatus, SourceHealth
from signalwise.training.policy_search import SearchConfig, default_zone_m, run_policy_episode

LENGTHS = {"n_in_0": 100.0, "s_out_0": 2.0, "s_next_0": 48.0, "s_in_0": 100.0, "n_out_0": 100.0, "e_in_0": 100.0,
           "w_out_0": 100.0, "w_in_0": 100.0, "e_out_0": 100.0, "e_in_1": 0.9, "e_up_1": 43.6, "s_out_1": 100.0}
UPSTREAM = {"e_in_1": (("e_up_1", 0.9),)}
DOWNSTREAM = {"s_out_0": (("s_next_0", 2.0),)}
IN_HALT, OUT_HALT, IN_MOVING = (ALL_FEATURES.index(f) for f in ("in_halt", "out_halt", "in_moving"))


def observe(halting: dict[str, int], moving: dict[str, int] | None = None, phase: int = 0,
            elapsed_s: float = 30.0) -> Observation:
    moving = moving or {}
    lanes = {lane: LaneState(halting.get(lane, 0), halting.get(lane, 0) + moving.get(lane, 0), 0.0, 0.0, 0.0)
             for lane in {*halting, *moving}}
    return Observation(100.0, "X", lanes, signal=SignalStatus(phase, "green", elapsed_s),
                       sources=(SourceHealth("lanes"),))


def features(zone_m: float, density: bool = True) -> PhaseFeatures:
    return PhaseFeatures(make_intersection(), ALL_FEATURES, LENGTHS if density else None, zone_m, UPSTREAM,
                         DOWNSTREAM)


@pytest.mark.parametrize("density", [True, False])
def test_a_phase_whose_only_incoming_lane_is_shorter_than_a_car_reads_the_queue_behind_it(density):
    """Five cars halt and two roll on the lane behind the 0.9 m stop-line lane, which shows none of them."""
    o = observe({"e_up_1": 5, "e_in_0": 3}, {"e_up_1": 2}, phase=1)
    alone = features(0.0, density)._all(o)
    assert alone[2, IN_HALT] == 0.0 and alone[2, IN_MOVING] == 0.0
    zoned = features(50.0, density)._all(o)
    per_100m = 100.0 / (0.9 + 43.6) if density else 1.0  # density: per 100 m of the whole zone
    assert zoned[2, IN_HALT] == pytest.approx(5 * per_100m)
    assert zoned[2, IN_MOVING] == pytest.approx(2 * per_100m)
    # the other phases read the same lanes as without zones
    assert zoned[1, IN_HALT] == pytest.approx(alone[1, IN_HALT]) == pytest.approx(3.0 if density else 3)


def test_with_zones_the_short_entrys_phase_is_served_and_without_it_never_is():
    o = observe({"e_up_1": 5, "e_in_0": 3}, phase=1)
    weights = max_pressure_weights(ALL_FEATURES)
    alone = PhaseScoreController(make_intersection(), weights, features=ALL_FEATURES, measure="density",
                                 lane_length_m=LENGTHS, zone_m=0.0, lane_upstream=UPSTREAM, lane_downstream=DOWNSTREAM)
    assert alone.zone_lane_ids == () and alone.decide(o).holds
    zoned = PhaseScoreController(make_intersection(), weights, features=ALL_FEATURES, measure="density",
                                 lane_length_m=LENGTHS, zone_m=50.0, lane_upstream=UPSTREAM,
                                 lane_downstream=DOWNSTREAM)
    assert set(zoned.zone_lane_ids) == {"e_up_1", "s_next_0"}  # the runtime observes these too
    assert zoned.decide(o).phase_index == 2


def test_the_current_phases_hold_terms_are_built_from_the_zoned_features():
    x = features(50.0)._all(observe({"e_up_1": 5}, {"e_up_1": 2}, phase=2))
    assert x[2, ALL_FEATURES.index("hold_halt")] == x[2, IN_HALT] > 0
    assert x[2, ALL_FEATURES.index("hold_moving")] == x[2, IN_MOVING] > 0


def test_an_outgoing_zone_counts_the_queue_beyond_a_short_outgoing_lane():
    o = observe({"s_next_0": 4})
    assert features(0.0)._all(o)[0, OUT_HALT] == 0.0
    assert features(50.0)._all(o)[0, OUT_HALT] == pytest.approx(4 * 100.0 / 50.0)


def test_the_features_measure_the_zones_max_pressure_measures():
    """Every vehicle halting, max-pressure's density pressure is in_halt - out_halt: one zone logic for both."""
    rng = np.random.default_rng(5)
    mp = MaxPressureController(make_intersection(), measure="density", lane_length_m=LENGTHS, zone_m=50.0,
                               lane_upstream=UPSTREAM, lane_downstream=DOWNSTREAM)
    f = features(50.0)
    assert f.zone_lane_ids == mp.zone_lane_ids
    for _ in range(20):
        o = observe({lane: int(rng.integers(0, 9)) for lane in LENGTHS})
        x = f._all(o)
        assert list(x[:, IN_HALT] - x[:, OUT_HALT]) == pytest.approx(mp.pressures(o))


def policy_model(policy: dict) -> Model:
    return Model(None, {}, {}, {}, {"agent": PHASE_SCORE, "scenario": "single", "policy": policy})


ZONE_CTX = ControlContext(lane_length_m=LENGTHS, lane_upstream=UPSTREAM, lane_downstream=DOWNSTREAM)


def test_a_model_without_zone_m_reads_each_lane_alone_as_before(tmp_path):
    """A model made before zones runs lane by lane, even where the context offers zones."""
    weights = [1.0, -0.8, 0.3, 2.5, -1.2, 0.4, 0.1, 3.0, -2.0, 1.5]
    save_model(tmp_path / "old", policy_model({"features": list(FEATURES), "weights": weights, "period_s": 5.0,
                                                "measure": "density"}))
    ctrl = make(f"ql:{tmp_path / 'old'}", make_intersection(), ZONE_CTX)
    assert isinstance(ctrl, PhaseScoreController)
    assert ctrl.zone_lane_ids == () and ctrl.features.zone_m == 0.0
    rng = np.random.default_rng(7)
    for _ in range(30):
        halting = {lane: int(rng.integers(0, 9)) for lane in LENGTHS}
        moving = {lane: int(rng.integers(0, 4)) for lane in LENGTHS}
        o = observe(halting, moving, phase=int(rng.integers(0, 3)), elapsed_s=float(rng.uniform(5, 90)))
        x = ctrl.features._all(o)
        # lane by lane, per 100 m of each lane (at least 7.5 m): e_in_1's 0.9 m lane alone, e_up_1 unread
        assert x[2, IN_HALT] == pytest.approx(halting["e_in_1"] * 100 / 7.5)
        assert x[2, IN_MOVING] == pytest.approx(moving["e_in_1"] * 100 / 7.5)
        assert x[0, OUT_HALT] == pytest.approx(halting["s_out_0"] * 100 / 7.5 + halting["n_out_0"])
        assert x[0, IN_HALT] == pytest.approx(halting["n_in_0"] + halting["s_in_0"])
        lane_by_lane = PhaseScoreController(make_intersection(), weights, measure="density", lane_length_m=LENGTHS)
        assert ctrl.decide(o) == lane_by_lane.decide(o)


def test_a_model_runs_over_the_zone_it_records(tmp_path):
    save_model(tmp_path / "new", policy_model({"features": list(ALL_FEATURES), "measure": "density",
                                                "weights": list(max_pressure_weights(ALL_FEATURES)),
                                                "period_s": 5.0, "zone_m": 50.0}))
    ctrl = make(f"ql:{tmp_path / 'new'}", make_intersection(), ZONE_CTX)
    assert ctrl.features.zone_m == 50.0 and set(ctrl.zone_lane_ids) == {"e_up_1", "s_next_0"}
    assert ctrl.decide(observe({"e_up_1": 5, "e_in_0": 3}, phase=1)).phase_index == 2


@pytest.mark.parametrize("zone_m", [-5, "far", float("nan")])
def test_a_model_with_a_broken_zone_runs_the_fallback(tmp_path, zone_m):
    save_model(tmp_path / "m", policy_model({"features": list(FEATURES), "weights": [1.0] + [0.0] * 9,
                                              "zone_m": zone_m}))
    ctrl = make(f"ql:{tmp_path / 'm'}", make_intersection(), ZONE_CTX)
    assert isinstance(ctrl, ModelUnavailable) and "zone_m" in ctrl.reason


def test_a_search_measures_over_max_pressures_zone_under_its_profile():
    assert default_zone_m({}) == 50.0  # safety, the default profile
    assert default_zone_m({"timing": "benchmark"}) == 50.0
    assert default_zone_m({"timing": {"profile": "reference"}}) == 0.0  # the reference reads each lane alone
    assert default_zone_m({"timing": "safety", "controller_options": {"zone_m": 30}}) == 30.0
    assert SearchConfig(run={"timing": "reference"}).zone() == 0.0
    assert SearchConfig(zone_m=20.0).zone() == 20.0 == SearchConfig(zone_m=20.0).to_json()["zone_m"]


def test_on_ingolstadt7_the_loop_observes_the_lanes_behind_gneJ143s_short_entry(tmp_path):
    """Real network data: gneJ143's western entry ends in three 0.9 m lanes (10425609#1_1..3) fed by
    10425609#0_1..3. A zoned model reads them and the loop observes them; an old model does not."""
    if importlib.util.find_spec("sumo_rl") is None:  # importing it would need SUMO_HOME; finding it does not
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.loop import LoopStepper, _need, open_field, resolve_scenario, sumo_options

    weights = list(max_pressure_weights(FEATURES))
    save_model(tmp_path / "zoned", policy_model({"features": list(FEATURES), "weights": weights, "measure": "density",
                                                  "zone_m": 50.0}))
    save_model(tmp_path / "old", policy_model({"features": list(FEATURES), "weights": weights,
                                                "measure": "density"}))
    cfg = RunConfig(scenario="resco:ingolstadt7", controller=f"ql:{tmp_path / 'zoned'}", seed=1)
    scenario = resolve_scenario(cfg)
    end_s = scenario.begin_s + 30.0
    fld = open_field(cfg, scenario, sumo_options(cfg, scenario, end_s=end_s))
    try:
        stepper = LoopStepper(cfg, fld, end_s)
        inter = stepper.by_id["gneJ143"]
        behind = {f"10425609#1_{k}": f"10425609#0_{k}" for k in (1, 2, 3)}
        assert all(fld.backend.lane_length_m(stop) < 1.0 for stop in behind)
        zoned = stepper.controllers["gneJ143"]
        assert set(behind.values()) <= set(zoned.zone_lane_ids)
        need = _need(inter, zoned)
        assert set(behind.values()) <= set(need.lane_ids)
        stepper.step()
        seen = fld.backend.observe(inter, stepper.t, need)
        assert set(behind.values()) <= set(seen.lanes)  # what the SUMO source hands the controller
        old = make(f"ql:{tmp_path / 'old'}", inter, stepper.context)
        assert old.zone_lane_ids == () and not set(behind.values()) & set(_need(inter, old).lane_ids)
        # four cars halt behind each short lane, none anywhere else
        served = [p.index for p in inter.phases if {m.in_lane for m in p.movements} & set(behind)]
        assert served
        o = Observation(100.0, inter.id, {lane: LaneState(4, 4, 0.0, 0.0, 0.0) for lane in behind.values()},
                        signal=SignalStatus(0, "green", 30.0), sources=(SourceHealth("lanes"),))
        assert all(zoned.features._all(o)[p, IN_HALT] > 0 for p in served)
        assert not old.features._all(o)[:, IN_HALT].any()
    finally:
        fld.backend.close()


@pytest.mark.slow
def test_a_training_episode_runs_the_zone_its_payload_names(tmp_path):
    """The search's worker builds each episode's controller from the payload: handed 50 m zones, max-pressure's
    weights serve ingolstadt7's entry that ends in 0.9 m lanes; handed 0, that entry is never served."""
    if importlib.util.find_spec("sumo_rl") is None:
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")

    def episode(zone_m: float) -> dict:
        return run_policy_episode(json.dumps({
            "key": zone_m, "weights": list(max_pressure_weights(FEATURES)), "features": list(FEATURES),
            "measure": "density", "sumo_seed": 1, "scenario": "resco:ingolstadt7", "run": {"timing": "benchmark"},
            "duration_s": 900, "period_s": 10.0, "run_dir": str(tmp_path / f"z{zone_m:g}"), "sumocfg": None,
            "net": None, "routes": [], "zone_m": zone_m}))

    zoned, alone = episode(50.0), episode(0.0)
    assert zoned["violations"] == alone["violations"] == 0
    assert zoned["avg_delay_s"] < 0.7 * alone["avg_delay_s"], (zoned, alone)
