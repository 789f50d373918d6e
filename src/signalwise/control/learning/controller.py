"""The Q-learning controller: `ql:PATH` runs a trained model; a training session's controllers learn online.

Both only propose; the shield decides. While the current green is inside its
minimum green the controller holds without deciding (the shield would refuse
a change anyway, and learning from refused proposals only adds noise). A
change it proposes is logged as a gap-out when the phase it ends has no
vehicle on its incoming lanes, else as a force-off (`green_end`).

Confidence of a trained model's decision, in [0, 1]:

    health * min(1, visits(state) / n_confident) * (0.5 + 0.5 * min(1, gap / gap_scale))

where `gap` is the best-minus-second-best value among actions tried in that
state, relative to |best|. A state never visited, or whose actions were
never tried, gives confidence 0; below the shield's threshold (0.5 by
default) the shield serves its Webster fallback. A missing, corrupted or
mismatched model gives a controller that always says confidence 0: the run
goes on under the fallback and the reason is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.types import Decision, Intersection, Observation
from ..base import ControlContext, register
from ..green_end import green_end
from .agent import Hyper, QLearner
from .deployed import registry_model_path
from .features import QUEUE_EDGES, TIME_EDGES_S, StateFeatures
from .phase_score import PhaseScoreController
from .qtable import Model, ModelError, QTable, load_model

log = logging.getLogger("signalwise.learning")

#: `meta["agent"]` of a phase-score policy (weights in `meta["policy"]`, no tables)
PHASE_SCORE = "phase-score"
#: `meta["agent"]` of a tabular Q-learning model (`signalwise train --agent tabular`)
TABULAR = "tabular-q"
N_CONFIDENT = 5
GAP_SCALE = 0.05


class QLController:
    name = "ql"
    observation = "counts"
    wants_detectors = False
    model_path: str | None = None  # the model directory it runs (None while training)

    def __init__(self, inter: Intersection, features: StateFeatures, table: QTable,
                 learner: QLearner | None = None, period_s: float = 5.0, n_confident: int = N_CONFIDENT,
                 gap_scale: float = GAP_SCALE, reward_scale: float = 0.01, guide: str = "none",
                 guide_visits: int = 3):
        self.inter = inter
        self.features = features
        self.table = table
        self.learner = learner
        self.period_s = period_s
        self.n_confident = n_confident
        self.gap_scale = gap_scale
        self.reward_scale = reward_scale
        self._min_green = inter.timing.min_green_s
        self._prev: tuple[int, int, float] | None = None
        self._cost = 0.0
        self._last: tuple[float, int] | None = None
        self.decisions = 0
        self.unseen = 0
        self.guide = None
        self.guide_visits = guide_visits
        if learner is not None:
            self.name = "ql-train"
            if learner.h.guide == "max-pressure":
                self.guide = features.pressure
        elif guide == "max-pressure":  # a model trained with guide_mode "each-action"
            self.guide = features.pressure

    def decide(self, obs: Observation) -> Decision:
        s = obs.signal
        health = self.features.health(obs)
        if s is None or s.interval != "green":
            return Decision(self.inter.id, None, self.name, health)
        if self.learner is not None:
            self._accumulate_cost(obs)
        if s.elapsed_s < self._min_green[s.phase_index]:
            return Decision(self.inter.id, None, self.name, health if self.learner is None else 1.0)
        state = self.features.state(obs)
        self.decisions += 1
        if self.learner is not None:
            return self._train_step(obs, state)
        action, conf = self.choose(state, health, self._guide_action(obs) if self.guide is not None else None)
        return self._proposal(None if action is None else self._phase_of(action, obs), obs, conf)

    def _proposal(self, phase: int | None, obs: Observation, confidence: float) -> Decision:
        """The decision to serve `phase` (None: hold), saying how a change ends the green (`green_end`)."""
        if phase is None:
            return Decision(self.inter.id, None, self.name, confidence)
        return Decision(self.inter.id, phase, self.name, confidence, green_end(self.inter, obs))

    def _phase_of(self, action: int, obs: Observation) -> int | None:
        """The phase an action proposes (None = hold)."""
        current = obs.signal.phase_index
        if self.features.actions == "switch":
            if action == 0:
                return None
            nxt = self.features.next_phase(obs)
            return None if nxt == current else nxt
        return None if action == current else action

    # -- trained model ----------------------------------------------------------------
    def choose(self, state: int, health: float, guide_action: int | None = None) -> tuple[int | None, float]:
        """Best action among those tried in `state`, and the confidence in it.

        With a guide (models trained with guide_mode "each-action") the guide's
        action is taken while some action has fewer than `guide_visits` tries.
        """
        visits = self.table.visits[state]
        tried = visits > 0
        n_tried = int(tried.sum())
        if n_tried == 0:
            self.unseen += 1
            return None, 0.0
        q = self.table.q[state]
        vals = np.where(tried, q, -np.inf)
        best = int(vals.argmax())
        if guide_action is not None and visits.min() < self.guide_visits:
            best = guide_action
        best_v = float(vals[best]) if tried[best] else float(vals.max())
        if n_tried >= 2:
            second_v = float(np.partition(vals, -2)[-2])
            gap = (best_v - second_v) / (abs(best_v) + 1e-6)
            gap_factor = 0.5 + 0.5 * min(1.0, gap / self.gap_scale)
        else:
            gap_factor = 0.5
        visit_factor = min(1.0, float(visits.sum()) / self.n_confident)
        return best, health * visit_factor * gap_factor

    # -- online learning -------------------------------------------------------------
    def _accumulate_cost(self, obs: Observation) -> None:
        """Halting vehicle-seconds since the last decision, discounted from that decision's time.

        Discounting inside the interval keeps the semi-Markov Bellman target
        consistent: a hand-over is followed by ~30 s without a decision
        (clearance + minimum green), a hold by 5 s; summing the long interval's
        cost undiscounted would overstate it against discounted holds (by ~3 %
        of the value at gamma 0.95, as large as the gaps being learned).
        """
        h = self.learner.h
        q = self.features.total_queue(obs)
        if h.downstream_weight:
            q += h.downstream_weight * self.features.downstream_queue(obs)
        if self._last is not None:
            t0, q0 = self._last
            area = 0.5 * (q + q0) * (obs.time_s - t0)
            if self._prev is not None:
                area *= h.gamma ** (max(0.0, t0 - self._prev[2]) / h.period_s)
            self._cost += area
        self._last = (obs.time_s, q)

    def _guide_action(self, obs: Observation) -> int | None:
        if self.guide is None:
            return None
        # Exactly what the max-pressure controller would do, its minimum hold
        # included: without the hold, "switch whenever another phase has more
        # pressure" chases fluctuations (181 s vs 90 s fixed-time on corridor)
        # and the table would learn the values of that bad behaviour.
        current = obs.signal.phase_index
        proposed = self.guide.decide(obs).phase_index
        if self.features.actions == "switch":
            return 0 if proposed is None or proposed == current else 1
        return current if proposed is None else proposed

    def _train_step(self, obs: Observation, state: int) -> Decision:
        if self._prev is not None:
            ps, pa, pt = self._prev
            self.learner.learn(ps, pa, -self.reward_scale * self._cost, state, obs.time_s - pt)
        self._cost = 0.0
        action = self.learner.act(state, self._guide_action(obs))
        self._prev = (state, action, obs.time_s)
        return self._proposal(self._phase_of(action, obs), obs, 1.0)


class ModelUnavailable:
    """Stands in when the model cannot be used: confidence 0, so the shield's fallback runs.

    The loop refuses to start a run with one (`unavailable_reason`): a run whose
    controller never ran is not a result.
    """

    name = "ql"
    observation = "none"
    wants_detectors = False
    period_s = 60.0

    def __init__(self, inter: Intersection, reason: str):
        self.inter = inter
        self.reason = reason
        self.unavailable_reason = reason
        self.decisions = 0

    def decide(self, obs: Observation) -> Decision:
        self.decisions += 1
        return Decision(self.inter.id, None, self.name, 0.0)


# ---------------------------------------------------------------------------
# `ql:PATH`
# ---------------------------------------------------------------------------

_MODELS: dict[str, Model | ModelError] = {}


def cached_model(path: str) -> Model:
    """Load once per process (memory-mapped: cheap), remembering failures too."""
    key = str(Path(path).expanduser().resolve())
    hit = _MODELS.get(key)
    if hit is None:
        try:
            hit = load_model(Path(key))
        except ModelError as exc:
            hit = exc
        _MODELS[key] = hit
    if isinstance(hit, ModelError):
        raise hit
    return hit


def deployed_guide_visits(meta: dict) -> int:
    """The guide threshold a model runs with: the validated choice (`--guide-visits auto`), else its training's."""
    chosen = meta.get("deployment", {}).get("guide_visits")
    return int(chosen if chosen is not None else meta.get("hyperparameters", {}).get("guide_visits", 3))


def controller_from_model(model: Model, inter: Intersection, period_s: float | None = None,
                          guide_visits: int | None = None, lane_length_m: dict[str, float] | None = None,
                          lane_upstream: dict | None = None, lane_downstream: dict | None = None,
                          lane_upstream_split: dict | None = None) -> QLController | PhaseScoreController:
    """Raises ModelError when `model` was not made for this intersection's layout.

    `guide_visits` overrides the deployed threshold (`ql:PATH?guide_visits=N`). A phase-score model
    measures over the zones it was trained with (`meta["policy"]["zone_m"]`; models without one read
    each lane alone, 0); `lane_upstream` / `lane_downstream` / `lane_upstream_split` are the context's zone
    lanes, the last read by a model trained with `shared_lanes: split` (models without the key skip). A model refined
    per signal (`signalwise train --per-signal`) gives a signal it names its own weights
    (`policy.signal_weights`); every other signal, on this network or another, runs the shared ones."""
    agent = model.meta.get("agent")
    if agent not in (PHASE_SCORE, TABULAR, None):  # None: tabular models from before the label
        raise ModelError(f"{model.path}: meta.json names agent {agent!r}; signalwise runs {PHASE_SCORE} and "
                         f"{TABULAR} models")
    if agent == PHASE_SCORE:
        if guide_visits is not None:  # the other agent's option: refused, as training refuses it, never ignored
            raise ModelError(f"{model.path}: guide_visits is a tabular model's option; a phase-score model has no "
                             "guide (leave ?guide_visits out)")
        policy = model.meta.get("policy")
        if not isinstance(policy, dict):
            raise ModelError(f"{model.path}: a phase-score model without its policy (meta.json: policy)")
        try:
            weights = (policy.get("signal_weights") or {}).get(inter.id, policy.get("weights"))
            return PhaseScoreController(inter, weights, period_s or float(policy.get("period_s", 5.0)),
                                        features=policy.get("features") or (),
                                        measure=policy.get("measure", "count"), lane_length_m=lane_length_m,
                                        zone_m=_zone_m(policy), lane_upstream=lane_upstream,
                                        lane_downstream=lane_downstream,
                                        shared_lanes=str(policy.get("shared_lanes", "skip")),
                                        lane_upstream_split=lane_upstream_split)
        except (ValueError, TypeError, AttributeError) as exc:  # a damaged policy: named, not a traceback
            raise ModelError(f"{model.path}: {exc}") from None
    enc = model.meta.get("features", {})
    features = StateFeatures(inter, enc.get("time_edges_s", TIME_EDGES_S), enc.get("queue_edges", QUEUE_EDGES),
                             actions=enc.get("actions", "phases"), state=enc.get("state", "lane-groups"))
    model.check_layout(inter.id, features.layout())
    table = model.table_for(inter.id)
    if table.encoding != features.encoding or table.n_actions != features.n_actions:
        raise ModelError(f"{model.path}: table encoding {table.encoding.radices} does not fit intersection "
                         f"{inter.id!r} ({features.encoding.radices})")
    hyper = model.meta.get("hyperparameters", {})
    guided = hyper.get("guide_mode") == "each-action" and hyper.get("guide") == "max-pressure"
    ctrl = QLController(inter, features, table, period_s=period_s or float(hyper.get("period_s", 5.0)),
                        guide="max-pressure" if guided else "none",
                        guide_visits=deployed_guide_visits(model.meta) if guide_visits is None else guide_visits)
    ctrl.model_path = str(model.path) if model.path is not None else None  # which model runs (live status)
    return ctrl


@register("ql")
def make_ql(inter: Intersection, ctx: ControlContext):
    path = ctx.options.get("arg") or ctx.options.get("model")
    if not path:
        return ModelUnavailable(inter, "no model given (use ql:PATH; a plain ql runs the "
                                      "model shipped for a built-in scenario: single, corridor, grid)")
    try:
        path, guide_visits = _model_options(str(path))
        if str(path).startswith("@"):  # ql:@active, ql:@v3: the registry's models, resolved by the caller
            path = registry_model_path(ctx.options, str(path)[1:], inter.id)
        period = ctx.options.get("period_s")  # a timing profile's decision period (benchmark: 10 s)
        return controller_from_model(cached_model(str(path)), inter, None if period is None else float(period),
                                     guide_visits=guide_visits, lane_length_m=ctx.lane_length_m,
                                     lane_upstream=ctx.lane_upstream, lane_downstream=ctx.lane_downstream,
                                     lane_upstream_split=ctx.lane_upstream_split)
    except ModelError as exc:
        # no log line here: every caller refuses the controller with this reason (`check_usable`), so a
        # "runs the fallback plan" said now would be contradicted a moment later
        return ModelUnavailable(inter, str(exc))


def _zone_m(policy: dict) -> float:
    """A phase-score model's measuring zone, metres; 0 for models made before zones (each lane alone)."""
    try:
        zone_m = float(policy.get("zone_m") or 0.0)
    except (TypeError, ValueError):
        raise ValueError(f"zone_m must be a number of metres, got {policy.get('zone_m')!r}") from None
    if not zone_m >= 0:
        raise ValueError(f"zone_m must be a number of metres, 0 or more, got {policy.get('zone_m')!r}")
    return zone_m


def _model_options(spec: str) -> tuple[str, int | None]:
    """`PATH` or `PATH?guide_visits=N` -> (path, threshold override or None)."""
    path, _, query = spec.partition("?")
    if not query:
        return path, None
    from urllib.parse import parse_qs

    options = parse_qs(query)
    unknown = set(options) - {"guide_visits"}
    if unknown:
        raise ModelError(f"unknown model option(s) {', '.join(sorted(unknown))} in ql:{spec} (known: guide_visits)")
    try:
        return path, int(options["guide_visits"][-1])
    except ValueError:
        raise ModelError(f"guide_visits must be a whole number in ql:{spec}") from None


# ---------------------------------------------------------------------------
# Online learning: `signalwise train` hands a session's controllers to the run loop
# ---------------------------------------------------------------------------


@dataclass
class TrainingSession:
    """The tables being trained in this process, and how to build learners for them.

    Training passes `lambda inter, ctx: session.controller_for(inter)` to the
    run loop as its controller factory; no registry or global holds it.
    """

    hyper: Hyper
    seed: int
    episode: int
    shared: bool = False
    features_cfg: dict = field(default_factory=dict)
    tables: dict[str, QTable] = field(default_factory=dict)
    table_of: dict[str, str] = field(default_factory=dict)
    layouts: dict[str, dict] = field(default_factory=dict)
    controllers: dict[str, QLController] = field(default_factory=dict)

    @property
    def epsilon(self) -> float:
        return self.hyper.epsilon(self.episode)

    def controller_for(self, inter: Intersection) -> QLController:
        features = StateFeatures(inter, **self.features_cfg)
        layout = features.layout()
        if inter.id in self.layouts and self.layouts[inter.id] != layout:
            raise ModelError(f"intersection {inter.id!r} has another layout than the model being trained")
        name = "shared" if self.shared else inter.id
        table = self.tables.get(name)
        if table is None:
            table = QTable(features.encoding, features.n_actions)
            self.tables[name] = table
        elif table.encoding != features.encoding:
            raise ModelError(f"intersection {inter.id!r} cannot share a table with a different encoding "
                             f"({features.encoding.radices} vs {table.encoding.radices})")
        self.table_of[inter.id] = name
        self.layouts[inter.id] = layout
        rng = np.random.default_rng([self.seed, self.episode, _stable_int(inter.id)])
        learner = QLearner(table, self.hyper, rng, self.epsilon)
        ctrl = QLController(inter, features, table, learner, self.hyper.period_s,
                            reward_scale=self.hyper.reward_scale)
        self.controllers[inter.id] = ctrl
        return ctrl


def _stable_int(text: str) -> int:
    return int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little") % (2**31)


@register("ql-train", internal=True)
def make_ql_train(inter: Intersection, ctx: ControlContext) -> QLController:
    """The run's label while training; its controllers come from the training session, never from here."""
    raise ModelError("ql-train learns inside `signalwise train` only; to run a model use ql:PATH")
