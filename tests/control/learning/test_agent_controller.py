"""Features, confidence and fallback of the Q-learning controller, and replay — no SUMO."""

from __future__ import annotations

import numpy as np
import pytest

from signalwise.control.base import ControlContext, make
from signalwise.control.learning.agent import Hyper, PrioritizedReplay, QLearner
from signalwise.control.learning.controller import ModelUnavailable, QLController, controller_from_model
from signalwise.control.learning.deployed import registry_model_path
from signalwise.control.learning.features import StateFeatures
from signalwise.control.learning.qtable import Model, ModelError, QTable, save_model
from signalwise.control.max_pressure import MIN_HOLD_S
from signalwise.core.types import (
    Intersection,
    LaneState,
    Movement,
    Observation,
    Phase,
    SignalStatus,
    SourceHealth,
    Timing,
)


def four_phase(lane_prefix: str = "") -> Intersection:
    lanes = [f"{lane_prefix}{a}_{k}" for a in "NESW" for k in range(3)]
    moves = tuple(Movement(i, lane, f"out{i}") for i, lane in enumerate(lanes))
    groups = [[1, 2, 7, 8], [0, 6], [4, 5, 10, 11], [3, 9]]
    phases = tuple(Phase(p, "".join("G" if i in links else "r" for i in range(12)), tuple(moves[i] for i in links))
                   for p, links in enumerate(groups))
    return Intersection("C", phases, 12, moves, (), (), Timing(3.3, 2.4, (22, 5, 22, 5), (60,) * 4, 7, 14.5, 77, 150))


def obs(inter, queues: dict[str, int], phase=0, elapsed=30.0, **kw) -> Observation:
    lanes = {lane: LaneState(queues.get(lane, 0), queues.get(lane, 0), 0, 0, 0) for lane in inter.in_lanes}
    return Observation(100.0, inter.id, lanes, signal=SignalStatus(phase, "green", elapsed), **kw)


def test_state_digits_follow_the_documented_encoding():
    inter = four_phase()
    f = StateFeatures(inter)
    assert f.encoding.radices == (4, 4, 4, 4, 4, 4)
    # phase 2, 25 s of green (bucket 2), queues: phase0 lanes N_1+N_2+S_1+S_2 = 5 (bucket 2), phase1 N_0 = 12 (3)
    o = obs(inter, {"N_1": 2, "S_2": 3, "N_0": 12, "E_1": 1}, phase=2, elapsed=25.0)
    assert f.encoding.decode(f.state(o)) == (2, 2, 2, 3, 1, 0)
    assert f.health(o) == 1.0
    half = Observation(1.0, "C", {lane: LaneState(0, 0, 0, 0, 0) for lane in inter.in_lanes[:6]},
                       signal=SignalStatus(0, "green", 1.0))
    assert f.health(half) == pytest.approx(0.5)
    assert f.health(obs(inter, {}, sources=(SourceHealth("lanes", 0.0, False, "garbage"),))) == 0.0
    assert f.health(obs(inter, {}, sources=(SourceHealth("lanes", 60.0),))) == 0.0


def _trained_controller():
    inter = four_phase()
    f = StateFeatures(inter)
    table = QTable(f.encoding, 4)
    return inter, f, table, QLController(inter, f, table)


def test_unseen_state_gives_zero_confidence_and_a_hold():
    inter, f, table, ctrl = _trained_controller()
    d = ctrl.decide(obs(inter, {"N_0": 3}))
    assert d.confidence == 0.0 and d.phase_index is None and ctrl.unseen == 1


def test_confidence_grows_with_visits_and_the_gap_and_falls_with_health():
    inter, f, table, ctrl = _trained_controller()
    o = obs(inter, {"N_0": 3})
    s = f.state(o)
    table.q[s] = [-10.0, -2.0, -9.0, -9.5]
    table.visits[s] = [1, 1, 0, 0]  # 2 visits of 5 needed; phase 1 clearly best
    d = ctrl.decide(o)
    assert d.phase_index == 1 and d.confidence == pytest.approx(0.4)
    table.visits[s] = [10, 10, 0, 0]
    assert ctrl.decide(o).confidence == pytest.approx(1.0)
    table.q[s] = [-2.0, -2.0, -9.0, -9.5]  # a tie: no preference, half confidence
    assert ctrl.decide(o).confidence == pytest.approx(0.5)
    table.q[s] = [-10.0, -2.0, -9.0, 0.0]  # action 3 untried: its optimistic 0 is not trusted
    assert ctrl.decide(o).phase_index == 1
    unhealthy = obs(inter, {"N_0": 3}, sources=(SourceHealth("lanes", 0.0, False, "garbage"),))
    assert ctrl.decide(unhealthy).confidence == 0.0


def test_inside_minimum_green_the_controller_holds_without_deciding():
    inter, f, table, ctrl = _trained_controller()
    d = ctrl.decide(obs(inter, {"N_0": 30}, phase=0, elapsed=5.0))
    assert d.phase_index is None and d.confidence == 1.0 and ctrl.decisions == 0


def test_missing_corrupted_or_mismatched_model_means_fallback_not_failure(tmp_path):
    inter = four_phase()
    ctx = ControlContext()
    missing = make(f"ql:{tmp_path / 'none'}", inter, ctx)
    assert isinstance(missing, ModelUnavailable)
    assert missing.decide(obs(inter, {})).confidence == 0.0
    f = StateFeatures(inter)
    model = Model(None, {"C": QTable(f.encoding, 4)}, {"C": "C"}, {"C": f.layout()}, {})
    save_model(tmp_path / "m", model)
    assert isinstance(make(f"ql:{tmp_path / 'm'}", inter, ctx), QLController)
    other = four_phase(lane_prefix="x")  # same id, other lanes
    with pytest.raises(ModelError, match="another layout"):
        controller_from_model(model, other)
    assert isinstance(make(f"ql:{tmp_path / 'm'}", other, ctx), ModelUnavailable)
    (tmp_path / "m" / "q-C.npy").write_bytes(b"broken")
    from signalwise.control.learning import controller as c

    c._MODELS.clear()
    assert isinstance(make(f"ql:{tmp_path / 'm'}", inter, ctx), ModelUnavailable)


def test_prioritized_replay_draws_surprising_transitions_more_often():
    rb = PrioritizedReplay(100, priority_alpha=1.0, priority_eps=0.0)
    for i in range(10):
        rb.add(i, 0, 0.0, i, 0.9, td=10.0 if i == 3 else 1.0)
    draws = rb.sample(np.random.default_rng(0), 19_000)
    share = np.mean(draws == 3)
    assert share == pytest.approx(10 / 19, abs=0.02)
    rb.set_td(np.array([3]), np.array([0.0]))
    assert not np.any(rb.sample(np.random.default_rng(1), 5000) == 3)


def test_q_learning_learns_the_cheaper_action_of_a_two_state_problem():
    t = QTable(StateFeatures(four_phase()).encoding, 4)
    learner = QLearner(t, Hyper(replay_batch=4), np.random.default_rng(0), epsilon=0.3)
    for _ in range(400):
        a = learner.act(7)
        learner.learn(7, a, -1.0 if a == 2 else -5.0, 7, 5.0)
    assert t.best_action(7) == 2 and t.visits[7].sum() == 400


def test_switch_actions_hold_or_hand_the_green_to_the_max_pressure_choice():
    inter = four_phase()
    f = StateFeatures(inter, actions="switch")
    assert f.n_actions == 2 and f.layout()["actions"] == "switch"
    assert f.layout() != StateFeatures(inter).layout()  # a phases model never loads as a switch model
    table = QTable(f.encoding, 2)
    ctrl = QLController(inter, f, table)
    o = obs(inter, {"E_1": 6, "W_2": 3, "N_0": 4}, phase=0)  # phase 2 (E/W through) has the most pressure
    s = f.state(o)
    table.visits[s] = [5, 5]
    table.q[s] = [-5.0, -1.0]
    assert ctrl.decide(o).phase_index == 2
    table.q[s] = [-1.0, -5.0]
    assert ctrl.decide(o).phase_index is None


def test_compact_state_keeps_the_gap_and_the_queues_of_the_hand_over():
    inter = four_phase()
    f = StateFeatures(inter, actions="switch", state="compact")
    assert f.encoding.names == ("phase", "green_time", "pressure_gap", "cur_queue", "next_queue")
    assert f.encoding.radices == (4, 5, 6, 4, 5)
    assert f.layout()["state"] == "compact" and f.layout() != StateFeatures(inter, actions="switch").layout()
    # phase 0 (N_1, N_2, S_1, S_2) holds 2 halting; phase 2 (E/W through) holds 9: the max-pressure pick.
    o = obs(inter, {"N_1": 2, "E_1": 6, "W_2": 3}, phase=0, elapsed=16.0)
    assert f.next_phase(o) == 2
    # 16 s -> bucket 2 (15-25); gap 9 - 2 = 7 -> bucket 4 (4..8); cur 2 -> 1 (1-2); next 9 -> 3 (9-15)
    assert f.encoding.decode(f.state(o)) == (0, 2, 4, 1, 3)
    with pytest.raises(ValueError, match="actions 'switch'"):
        StateFeatures(inter, state="compact")


def test_bootstrap_ignores_untried_actions():
    """An untried action's initial 0 is no value: bootstrapping from it would reward seeking novel states."""
    t = QTable(StateFeatures(four_phase()).encoding, 4)
    learner = QLearner(t, Hyper(replay_batch=0, gamma=0.9), np.random.default_rng(0), epsilon=0.0)
    t.update(9, 1, -10.0, 1.0)  # state 9: only action 1 tried, worth -10
    assert learner.next_value(9) == pytest.approx(-10.0)
    learner.learn(3, 0, -1.0, 9, dt_s=5.0)
    assert t.q[3, 0] == pytest.approx(-1.0 + 0.9 * -10.0, rel=1e-5)
    # a state never seen bootstraps from the mean of the values seen, not from 0
    assert learner.next_value(11) == pytest.approx(float(t.q[t.visits > 0].mean()), rel=1e-5)


def test_each_action_guide_mode_follows_the_guide_until_every_action_is_known():
    f = StateFeatures(four_phase(), actions="switch", state="compact")
    t = QTable(f.encoding, 2)
    h = Hyper(guide_mode="each-action", guide_visits=3)
    learner = QLearner(t, h, np.random.default_rng(0), epsilon=0.0)
    t.visits[4] = [50, 2]
    t.q[4] = [-1.0, -9.0]
    assert learner.act(4, guide_action=1) == 1  # switch tried twice only: max-pressure's choice stands
    old_mode = QLearner(t, Hyper(guide_mode="state", guide_visits=3), np.random.default_rng(0), 0.0)
    assert old_mode.act(4, guide_action=1) == 0  # "state": 52 visits in all is enough, the table decides
    t.visits[4] = [50, 3]
    assert learner.act(4, guide_action=1) == 0  # both known: the table decides


def test_the_guide_waits_for_max_pressure_minimum_hold():
    """Guided training acts like the max-pressure controller, hold included, not like raw pressure."""
    inter = four_phase()
    f = StateFeatures(inter, actions="switch", state="compact")
    table = QTable(f.encoding, 2)
    learner = QLearner(table, Hyper(guide_mode="each-action", guide_visits=10**6), np.random.default_rng(0), 0.0)
    ctrl = QLController(inter, f, table, learner)
    busy_other = {"E_1": 9, "W_2": 9}
    assert ctrl.decide(obs(inter, busy_other, phase=0, elapsed=23.0)).phase_index == 2
    assert ctrl.decide(obs(inter, busy_other, phase=1, elapsed=MIN_HOLD_S - 2)).phase_index is None  # inside the hold


def test_a_model_trained_each_action_runs_max_pressure_where_it_knows_too_little():
    inter = four_phase()
    f = StateFeatures(inter, actions="switch", state="compact")
    table = QTable(f.encoding, 2)
    o = obs(inter, {"E_1": 6, "W_2": 3}, phase=0, elapsed=30.0)
    s = f.state(o)
    table.visits[s] = [40, 1]
    table.q[s] = [-1.0, -5.0]
    model = Model(None, {"C": table}, {"C": "C"}, {"C": f.layout()},
                  {"features": {"actions": "switch", "state": "compact"},
                   "hyperparameters": {"guide": "max-pressure", "guide_mode": "each-action", "guide_visits": 5}})
    ctrl = controller_from_model(model, inter)
    assert ctrl.decide(o).phase_index == 2  # the table prefers holding, but has tried switching only once
    table.visits[s] = [40, 5]
    assert ctrl.decide(o).phase_index is None


def test_downstream_weight_charges_the_queue_pushed_onto_neighbours():
    inter = four_phase()
    f = StateFeatures(inter, actions="switch", state="compact")
    assert set(f.out_lanes) == {f"out{i}" for i in range(12)}

    def cost_after_two_observations(weight: float) -> float:
        table = QTable(f.encoding, 2)
        learner = QLearner(table, Hyper(downstream_weight=weight, replay_batch=0), np.random.default_rng(0), 0.0)
        ctrl = QLController(inter, f, table, learner)
        for t in (100.0, 105.0):
            lanes = {lane: LaneState(2, 2, 0, 0, 0) for lane in inter.in_lanes}  # 24 halting on approaches
            lanes["out3"] = LaneState(10, 10, 0, 0, 0)  # 10 halting downstream
            ctrl.decide(Observation(t, "C", lanes, signal=SignalStatus(0, "green", 1.0)))  # inside min green
        return ctrl._cost

    assert cost_after_two_observations(0.0) == pytest.approx(24 * 5.0)
    assert cost_after_two_observations(0.5) == pytest.approx((24 + 0.5 * 10) * 5.0)


def test_a_model_runs_with_its_validated_threshold_unless_the_spec_overrides_it(tmp_path):
    inter = four_phase()
    f = StateFeatures(inter, actions="switch", state="compact")
    hyper = {"guide": "max-pressure", "guide_mode": "each-action", "guide_visits": 10}
    meta = {"features": {"actions": "switch", "state": "compact"}, "hyperparameters": hyper}
    for name, deployment in (("trained", None), ("selected", {"guide_visits": 30})):
        save_model(tmp_path / name, Model(None, {"C": QTable(f.encoding, 2)}, {"C": "C"}, {"C": f.layout()},
                                          {**meta, **({"deployment": deployment} if deployment else {})}))
    ctx = ControlContext()
    assert make(f"ql:{tmp_path / 'trained'}", inter, ctx).guide_visits == 10
    assert make(f"ql:{tmp_path / 'selected'}", inter, ctx).guide_visits == 30
    assert make(f"ql:{tmp_path / 'selected'}?guide_visits=7", inter, ctx).guide_visits == 7
    for bad in ("?colour=red", "?guide_visits=many"):
        ctrl = make(f"ql:{tmp_path / 'selected'}{bad}", inter, ctx)
        assert isinstance(ctrl, ModelUnavailable) and ctrl.decide(obs(inter, {})).confidence == 0.0


def test_registry_references_read_the_models_the_context_gives_and_no_environment(tmp_path, monkeypatch):
    inter = four_phase()
    f = StateFeatures(inter)
    save_model(tmp_path / "m", Model(None, {"C": QTable(f.encoding, 4)}, {"C": "C"}, {"C": f.layout()}, {}))
    options = {"model_registry": "sqlite:///reg.db",
               "registry_models": {"active": {"C": str(tmp_path / "m")}, "v1": {"*": str(tmp_path / "m")}}}
    ctx = ControlContext(options=options)
    assert isinstance(make("ql:@active", inter, ctx), QLController)
    assert isinstance(make("ql:@v1", inter, ctx), QLController)
    assert make("ql:@active", inter, ctx).model_path == str((tmp_path / "m").resolve())
    assert registry_model_path(options, "active", "C") == tmp_path / "m"
    assert registry_model_path(options, "v1", "X") == tmp_path / "m"  # a version: at every intersection
    with pytest.raises(ModelError, match="no model deployed at intersection 'X' \\(registry sqlite:///reg.db\\)"):
        registry_model_path(options, "active", "X")
    with pytest.raises(ModelError, match="ql:@v2: the registry's models were not handed to this run"):
        registry_model_path(options, "v2", "C")
    unknown = make("ql:@v2", inter, ctx)
    assert isinstance(unknown, ModelUnavailable) and "ql:@v2" in unknown.reason
    # nothing handed over: the controller does not go looking (no file, no environment variable)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIGNALWISE_DATABASE_URL", "sqlite:///reg.db")
    bare = make("ql:@active", inter, ControlContext())
    assert isinstance(bare, ModelUnavailable) and "were not handed to this run" in bare.reason


def test_ql_train_is_the_label_of_training_runs_not_a_controller_to_make():
    with pytest.raises(ModelError, match="ql-train learns inside `signalwise train` only; to run a model use ql:PATH"):
        make("ql-train", four_phase(), ControlContext(options={"session": "anything"}))
