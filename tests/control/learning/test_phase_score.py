"""The phase-score policy: its features, its decisions, its artifact, and the models shipped in the package."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from signalwise.control.base import ControlContext, make
from signalwise.control.learning.controller import PHASE_SCORE, ModelUnavailable, controller_from_model
from signalwise.control.learning.phase_score import (
    ALL_FEATURES,
    FEATURES,
    FEATURES_V1,
    MAX_PRESSURE_WEIGHTS,
    PhaseFeatures,
    PhaseScoreController,
    max_pressure_weights,
)
from signalwise.control.learning.qtable import Model, ModelError, load_model, save_model
from signalwise.control.learning.shipped import SHIPPED_SCENARIOS, shipped_model_path
from signalwise.core.types import (
    Detector,
    Intersection,
    LaneState,
    Movement,
    Observation,
    Phase,
    SignalStatus,
    SourceHealth,
    Timing,
)


def four_phase() -> Intersection:
    """12 approach lanes N/E/S/W_0..2, link i leads to out<i>; phases serve links [1,2,7,8], [0,6], [4,5,10,11], [3,9]."""
    lanes = [f"{a}_{k}" for a in "NESW" for k in range(3)]
    moves = tuple(Movement(i, lane, f"out{i}") for i, lane in enumerate(lanes))
    groups = [[1, 2, 7, 8], [0, 6], [4, 5, 10, 11], [3, 9]]
    phases = tuple(Phase(p, "".join("G" if i in links else "r" for i in range(12)), tuple(moves[i] for i in links))
                   for p, links in enumerate(groups))
    return Intersection("C", phases, 12, moves, (), (), Timing(3.3, 2.4, (22, 5, 22, 5), (60,) * 4, 7, 14.5, 77, 150))


def observe(inter, halting: dict[str, int], moving: dict[str, int] | None = None, phase: int = 0,
            elapsed: float = 30.0) -> Observation:
    moving = moving or {}
    lanes = {lane: LaneState(halting.get(lane, 0), halting.get(lane, 0) + moving.get(lane, 0), 0, 0, 0)
             for lane in (*inter.in_lanes, *inter.out_lanes)}
    return Observation(100.0, inter.id, lanes, signal=SignalStatus(phase, "green", elapsed),
                       sources=(SourceHealth("lanes"),))


def test_features_sum_each_movement_and_mark_the_current_phase():
    inter = four_phase()
    f = PhaseFeatures(inter)
    # phase 0 serves links 1, 2, 7, 8 (N_1, N_2, S_1, S_2 -> out1, out2, out7, out8)
    x = f.matrix(observe(inter, {"N_1": 3, "S_2": 2, "out1": 4, "N_0": 6}, {"N_1": 5}, phase=0, elapsed=45.0))
    assert x.shape == (4, len(FEATURES))
    row = dict(zip(FEATURES, x[0], strict=True))
    assert row == {"in_halt": 5, "out_halt": 4, "in_moving": 5, "hold": 1, "hold_green_min": 0.75,
                   "hold_moving": 5, "hold_halt": 5, "hold_young": 0, "switch_min_green_min": 0,
                   "switch_clearance_10s": 0}
    # phase 1: minimum green 5 s, clearance 3.3 + 2.4 s
    assert dict(zip(FEATURES, x[1], strict=True)) == pytest.approx({
        "in_halt": 6, "out_halt": 0, "in_moving": 0, "hold": 0, "hold_green_min": 0, "hold_moving": 0, "hold_halt": 0,
        "hold_young": 0, "switch_min_green_min": 5 / 60, "switch_clearance_10s": 0.57})
    young = f.matrix(observe(inter, {}, phase=2, elapsed=6.0))
    assert young[2, FEATURES.index("hold_young")] == pytest.approx(0.6)
    assert young[0, FEATURES.index("switch_min_green_min")] == pytest.approx(22 / 60)


def test_hold_gap_holds_a_green_while_its_detectors_see_traffic():
    """Actuated's extension: a vehicle over a loop of the green's lanes within 3 s keeps the green."""
    dets = (Detector("sb_N_1", "N_1", "stopbar", 2.0, 1), Detector("sb_N_0", "N_0", "stopbar", 2.0, 2))
    inter = dataclasses.replace(four_phase(), detectors=dets)
    mp = max_pressure_weights(ALL_FEATURES)
    weights = [100.0 if f == "hold_gap" else w for f, w in zip(ALL_FEATURES, mp, strict=True)]
    c = PhaseScoreController(inter, weights, features=ALL_FEATURES)
    assert c.wants_detectors and not PhaseScoreController(inter, mp, features=ALL_FEATURES).wants_detectors

    def at(idle_s: float, phase: int = 0) -> Observation:  # phase 0 (N_1's loop) green, phase 1 (N_0) has 8 waiting
        return dataclasses.replace(observe(inter, {"N_0": 8}, phase=phase),
                                   detector_idle_s={"sb_N_1": idle_s, "sb_N_0": 0.0})

    gap = ALL_FEATURES.index("hold_gap")
    assert list(c.features.matrix(at(1.0))[:, gap]) == [1.0, 0.0, 0.0, 0.0]  # the green's own loops only
    assert list(c.features.matrix(at(9.0, phase=1))[:, gap]) == [0.0, 1.0, 0.0, 0.0]
    assert c.decide(at(1.0)).phase_index is None  # traffic still crossing: extend
    assert c.decide(at(4.0)).phase_index == 1  # gap out: the waiting phase


def test_max_pressure_weights_serve_the_largest_halting_pressure_and_hold_on_ties():
    inter = four_phase()
    c = PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS)
    # phase 1 (N_0, S_0): 6 halting; phase 0: 5 halting but 4 halting downstream -> pressure 1
    assert c.decide(observe(inter, {"N_1": 3, "S_2": 2, "out1": 4, "N_0": 6})).phase_index == 1
    # equal pressure: hold (a change costs a clearance)
    assert c.decide(observe(inter, {"N_1": 6, "N_0": 6})).phase_index is None


def test_a_hold_weight_keeps_a_green_that_max_pressure_would_end():
    inter = four_phase()
    weights = list(MAX_PRESSURE_WEIGHTS)
    weights[FEATURES.index("hold")] = 4.0  # a change must gain more than 4 vehicles of pressure
    o = observe(inter, {"N_1": 3, "N_0": 6})
    assert PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS).decide(o).phase_index == 1
    assert PhaseScoreController(inter, weights).decide(o).phase_index is None


def test_confidence_is_the_observation_health():
    inter = four_phase()
    c = PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS)
    assert c.decide(observe(inter, {})).confidence == 1.0
    stale = Observation(100.0, inter.id, {}, signal=SignalStatus(0, "green", 30.0),
                        sources=(SourceHealth("lanes", 60.0),))
    assert c.decide(stale).confidence == 0.0


def test_wrong_weights_or_features_are_refused_in_one_line():
    with pytest.raises(ValueError, match="10 finite weights"):
        PhaseScoreController(four_phase(), [1.0, 2.0])
    with pytest.raises(ValueError, match="unknown or repeated phase-score feature"):
        PhaseScoreController(four_phase(), [1.0, 2.0], features=("in_halt", "queue_length"))


def test_a_model_of_fewer_features_decides_on_those_alone():
    inter = four_phase()
    v1 = PhaseScoreController(inter, [1.0, -1.0, 0, 2.0, 0, 0, 0], features=FEATURES_V1)
    full = PhaseScoreController(inter, [1.0, -1.0, 0, 2.0, 0, 0, 0, 0, 0, 0])
    o = observe(inter, {"N_1": 3, "N_0": 6}, phase=0, elapsed=6.0)
    assert v1.features.matrix(o).shape == (4, 7)
    assert v1.decide(o) == full.decide(o)


def policy_model(weights) -> Model:
    features = FEATURES if len(weights) == len(FEATURES) else FEATURES_V1
    return Model(None, {}, {}, {}, {"agent": PHASE_SCORE, "scenario": "single",
                                    "policy": {"features": list(features), "weights": list(weights), "period_s": 5.0}})


def test_a_policy_model_round_trips_through_its_artifact(tmp_path):
    weights = [1.0, -0.8, 0.3, 2.5, -1.2, 0.4, 0.1, 3.0, -2.0, 1.5]
    save_model(tmp_path / "m", policy_model(weights))
    loaded = load_model(tmp_path / "m")
    inter = four_phase()
    ctrl = controller_from_model(loaded, inter)
    assert isinstance(ctrl, PhaseScoreController)
    assert list(ctrl.weights) == weights
    rng = np.random.default_rng(3)
    original = PhaseScoreController(inter, weights)
    for _ in range(50):  # the loaded model decides exactly as the one saved
        o = observe(inter, {lane: int(rng.integers(0, 12)) for lane in (*inter.in_lanes, *inter.out_lanes)},
                    {lane: int(rng.integers(0, 5)) for lane in inter.in_lanes}, phase=int(rng.integers(0, 4)),
                    elapsed=float(rng.uniform(5, 90)))
        assert ctrl.decide(o) == original.decide(o)


def test_a_tabular_option_on_a_policy_model_is_refused_not_ignored(tmp_path):
    save_model(tmp_path / "m", policy_model(MAX_PRESSURE_WEIGHTS))
    with pytest.raises(ModelError, match="guide_visits is a tabular model's option"):
        controller_from_model(load_model(tmp_path / "m"), four_phase(), guide_visits=5)


def test_a_policy_model_with_broken_weights_is_a_model_error(tmp_path):
    save_model(tmp_path / "m", policy_model([1.0, float("nan"), 0, 0, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ModelError, match="finite weights"):
        controller_from_model(load_model(tmp_path / "m"), four_phase())


def test_a_policy_model_that_cannot_decide_says_why_in_plain_numbers(tmp_path):
    model = policy_model(MAX_PRESSURE_WEIGHTS)
    model.meta["policy"]["period_s"] = -1
    save_model(tmp_path / "period", model)
    with pytest.raises(ModelError, match="period_s must be a positive number of seconds, not -1"):
        controller_from_model(load_model(tmp_path / "period"), four_phase())
    model = policy_model(MAX_PRESSURE_WEIGHTS)
    model.meta["agent"] = "bogus"
    save_model(tmp_path / "agent", model)
    with pytest.raises(ModelError, match="meta.json names agent 'bogus'; signalwise runs phase-score and tabular-q"):
        controller_from_model(load_model(tmp_path / "agent"), four_phase())
    with pytest.raises(ValueError, match=r"got \[1.0, 2.0\]$"):  # the weights as written, not np.float64(...)
        PhaseScoreController(four_phase(), [1.0, 2.0])


def test_a_profile_decision_period_reaches_the_policy(tmp_path):
    save_model(tmp_path / "m", policy_model(MAX_PRESSURE_WEIGHTS))
    ctrl = make(f"ql:{tmp_path / 'm'}", four_phase(), ControlContext(options={"period_s": 10.0}))
    assert isinstance(ctrl, PhaseScoreController) and ctrl.period_s == 10.0


@pytest.mark.parametrize("scenario", SHIPPED_SCENARIOS)
def test_every_built_in_scenario_ships_a_model_that_loads(scenario):
    path = shipped_model_path(scenario)
    assert path is not None, f"no model shipped for {scenario}: run scripts/train_shipped_models.py"
    meta = json.loads((path / "meta.json").read_text())
    assert meta["agent"] == PHASE_SCORE and meta["scenario"] == scenario
    assert meta["training"]["violations"] == 0
    assert isinstance(controller_from_model(load_model(path), four_phase()), PhaseScoreController)


def test_a_bare_ql_elsewhere_is_still_no_model():
    ctrl = make("ql", four_phase(), ControlContext())
    assert isinstance(ctrl, ModelUnavailable) and "use ql:PATH" in ctrl.reason
    assert shipped_model_path("resco:cologne1") is None and shipped_model_path(None) is None


def test_density_counts_vehicles_per_100_m_of_their_lane():
    inter = four_phase()
    lengths = {"N_1": 9.0, "N_0": 200.0, "out1": 50.0}
    c = PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS, measure="density", lane_length_m=lengths)
    x = c.features.matrix(observe(inter, {"N_1": 1, "N_0": 6, "out1": 1}))
    assert x[0, FEATURES.index("in_halt")] == pytest.approx(100 / 9)  # one car on a 9 m lane: a full lane
    assert x[0, FEATURES.index("out_halt")] == pytest.approx(2.0)
    assert x[1, FEATURES.index("in_halt")] == pytest.approx(3.0)
    # counted in vehicles, the long queue wins; per 100 m, the short lane's
    o = observe(inter, {"N_1": 1, "N_0": 6})
    assert PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS).decide(o).phase_index == 1
    assert c.decide(o).phase_index is None
    with pytest.raises(ValueError, match="measure"):
        PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS, measure="speed")


def test_a_split_model_sees_the_queue_before_a_turn_pocket_and_a_skip_model_does_not(tmp_path):
    """N_1 (phase 0's) and N_0 (phase 1's) are 9 m pockets fed by one lane, `up`, 100 m: the queue stands there."""
    inter = four_phase()
    lengths = {"N_1": 9.0, "N_0": 9.0, "up": 100.0}
    split = {"N_1": (("up", 9.0, 0.5),), "N_0": (("up", 9.0, 0.5),)}
    ctx = ControlContext(lane_length_m=lengths, lane_upstream_split=split)
    skip = PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS, measure="density", lane_length_m=lengths, zone_m=50.0,
                                lane_upstream_split=split)
    shared = PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS, measure="density", lane_length_m=lengths,
                                  zone_m=50.0, shared_lanes="split", lane_upstream_split=split)
    assert "up" not in skip.zone_lane_ids and shared.zone_lane_ids == ("up",)
    # phase 0 green, its pocket empty; phase 1's pocket holds one car and `up` ten behind it
    o = observe(inter, {"N_0": 1}, phase=0)
    o = dataclasses.replace(o, lanes={**o.lanes, "up": LaneState(10, 10, 0, 0, 0)})
    x = shared.features.matrix(o)
    # N_0's zone: itself whole and half of `up`, per 100 m of 9 + 50 m; N_1's zone holds the other half
    assert x[1, FEATURES.index("in_halt")] == pytest.approx((1 + 5) * 100 / 59)
    assert x[0, FEATURES.index("in_halt")] == pytest.approx(5 * 100 / 59)
    # phase 0's green faces 20 halting on `up` behind its empty pockets, phase 1's N_0 (200 m) 6: split holds
    # phase 0, skip sees nothing there and changes
    long = {**lengths, "N_0": 200.0}
    split0 = {"N_1": (("up", 9.0, 0.5),), "N_2": (("up", 9.0, 0.5),)}
    o = observe(inter, {"N_0": 6}, phase=0)
    o = dataclasses.replace(o, lanes={**o.lanes, "up": LaneState(20, 20, 0, 0, 0)})
    for shared_lanes, changes_to in (("split", None), ("skip", 1)):
        ctrl = PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS, measure="density", lane_length_m=long,
                                    zone_m=50.0, shared_lanes=shared_lanes, lane_upstream_split=split0)
        assert ctrl.decide(o).phase_index == changes_to
    assert skip.features.matrix(o)[0, FEATURES.index("in_halt")] == 0
    with pytest.raises(ValueError, match="shared_lanes 'all'"):
        PhaseScoreController(inter, MAX_PRESSURE_WEIGHTS, shared_lanes="all")
    # a model trained with the split reads the context's split zones; one without the key skips them
    model = policy_model(MAX_PRESSURE_WEIGHTS)
    model.meta["policy"].update({"measure": "density", "zone_m": 50.0, "shared_lanes": "split"})
    save_model(tmp_path / "split", model)
    model.meta["policy"].pop("shared_lanes")
    save_model(tmp_path / "old", model)
    assert make(f"ql:{tmp_path / 'split'}", inter, ctx).zone_lane_ids == ("up",)
    assert make(f"ql:{tmp_path / 'old'}", inter, ctx).zone_lane_ids == ()


def test_a_phase_score_model_deploys_where_it_is_named_and_runs_as_ql_active(tmp_path):
    from signalwise.runtime.commands import registry_options
    from signalwise.store import get_engine
    from signalwise.store.model_registry import DoesNotFit, ModelRegistry

    save_model(tmp_path / "m", policy_model([1.0, -1.0, 0, 3.0, 0, 0, 0, 0, 0, 0]))
    reg = ModelRegistry(get_engine(f"sqlite:///{tmp_path / 'reg.db'}"), tmp_path / "cache")
    v = reg.add(tmp_path / "m").version
    with pytest.raises(DoesNotFit, match="fits any signal: name where it runs"):
        reg.deploy(v)
    assert reg.deploy(v, ["C"]) == {"C": v}
    options = registry_options(["ql:@active"], registry=reg)
    ctrl = make("ql:@active", four_phase(), ControlContext(options=options))
    assert isinstance(ctrl, PhaseScoreController) and ctrl.weights[FEATURES.index("hold")] == 3.0


@pytest.mark.parametrize("record", ["full", "lean"])
def test_a_model_weighing_hold_gap_reads_its_detectors_in_a_run(tmp_path, record):
    """A model weighing `hold_gap` (as `signalwise train --start actuated` makes) reads the loops' idle times:
    a run of it (lean, as training and benchmarks record, or full) must place those loops and hand their idle
    times to it. Without them the feature reads 0 and the model silently runs as another controller."""
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.run import execute_run

    seen: list[int] = []

    class Watching:  # passes everything through; counts the idle times each observation carried
        def __init__(self, source):
            self._source = source

        def observe(self, inter, time_s, need):
            obs = self._source.observe(inter, time_s, need)
            seen.append(len(obs.detector_idle_s))
            return obs

        def __getattr__(self, name):
            return getattr(self._source, name)

    features = (*FEATURES, "hold_gap")
    weights = [1.0 if f == "in_halt" else -1.0 if f == "out_halt" else 100.0 if f == "hold_gap" else 0.0
               for f in features]
    save_model(tmp_path / "m", Model(None, {}, {}, {}, {"agent": PHASE_SCORE, "scenario": "corridor", "policy": {
        "features": list(features), "weights": weights, "period_s": 1.0}}))
    cfg = RunConfig(scenario="corridor", controller=f"ql:{tmp_path / 'm'}", duration_s=120, seed=1,
                    record=record, emissions=False)
    result = execute_run(cfg, tmp_path / "run", source_wrapper=Watching)
    assert result.metrics["safety"]["violations"] == 0
    assert seen and max(seen) > 0, "the model was never given a detector's idle time"
