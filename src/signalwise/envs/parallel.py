"""`SignalwiseParallelEnv`: a PettingZoo parallel environment, one agent per signal, shield in the loop.

    env = SignalwiseParallelEnv("corridor", duration_s=900)
    obs, infos = env.reset(seed=1)
    while env.agents:
        obs, rewards, terminations, truncations, infos = env.step({a: policy(obs[a]) for a in env.agents})
    env.audit().violations  # [] : the independent checker found nothing
    env.close()

- agents: the signalised intersections signalwise can control (agent id =
  SUMO traffic-light id), in the network's order;
- action: Discrete(n_phases), the phase the agent wants served next (the
  current phase = hold). It is a *proposal*: the intersection's
  IntersectionShield decides, exactly as in `signalwise run` (minimum and
  maximum green, yellow and all-red, pedestrian walk and clearance, cycle
  bound, emergency preemption). A proposal stands until the agent makes
  another or the signal starts its green; an agent left out of an action
  dict keeps its standing one;
- observation: see `observation.py` (phase one-hot, clearing flag, time in
  interval, per-lane-group queue and count, all in [0, 1]; with
  `clearance_features=True` also the phase a yellow and all-red lead to, a
  yellow flag and the clearance time left);
- reward: see `reward.py` (minus halting vehicle-seconds on the approaches
  since the agent's last step), times `reward_scale` (0.0, never -0.0, when
  nothing halted);
- state(): the global state a centralised critic reads, every agent's
  observation in `possible_agents` order, concatenated (`state_space`);
- a step advances SUMO by `decision_period_s`; by default the decision
  period `signalwise run` gives its controller under the configuration's
  timing profile (`controller_options["period_s"]`: 10 s under benchmark, 5 s
  on resco:arterial4x4 and under reference), else max-pressure's 5 s; the
  episode is truncated (never terminated) at the end of the scenario's
  window, or after `duration_s`: the last step ends there, shorter than
  the others when `duration_s` is no multiple of the period (its reward
  covers that shorter time); a `duration_s` past a built-in or RESCO
  scenario's window, whose demand ends with it, is warned about;
- infos[agent]: `time_s` (SUMO's simulated time, which starts at the
  scenario's begin), the signal's `phase` and `interval` after the step,
  `next_phase` (during yellow and all-red the phase the clearance leads to,
  None in green), `proposed_phase` (the proposal standing during the step:
  the step's action, or the agent's earlier one the shield still holds;
  None when none stands), `shield_override` (True when the signal is
  neither green in the standing proposal's phase nor clearing towards it
  after the step) and `shield_rules`: the shield's interventions during the
  step (min_green, max_green, cycle_max, preempt, ...) and, on an override,
  what holds the proposal back at the step's end (`HELD_BY`), each rule
  once, in the order it first came;
- the last step's infos[agent]["episode_metrics"] (and `metrics()` after
  it): the episode's network figures as `signalwise run` computes them
  (`episode.episode_summary`: RESCO's average delay, vehicles never
  inserted, ...); not under Gymnasium's own "episode" key, which its
  RecordEpisodeStatistics wrapper (and Stable-Baselines3's Monitor) write;
- seeding (`seeds.py`): `reset(seed=s)` runs SUMO with `--seed s`, the
  same traffic as `signalwise run --seed s` (a seed from 2**31 up, which
  SUMO cannot take, runs s mod 2**31), and seeds the environment's
  generator `np_random`; a reset without a seed runs a SUMO seed drawn from
  that generator among `signalwise train`'s training seeds (1,000,000 up),
  never one of the small seeds `compare` and `evaluate` hold out. Never
  seeded, the generator starts from the `seed=` run option (1 unless
  given): reproducible, and the same in every copy of a vector env whose
  first reset has no seed. `infos[agent]["sumo_seed"]` is the seed an
  episode runs.

libsumo is one simulation per process: one open environment per process
(close() it before opening another; parallel training uses processes).
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from ..analytics.safety_audit import AuditReport
from ..control.max_pressure import PERIOD_S
from ..runtime.config import RunConfig
from ..runtime.loop import resolve_scenario
from .episode import Episode, probe_network
from .observation import PhaseQueueObservation
from .reward import halting_vehicle_seconds
from .seeds import drawn_sumo_seed, given_sumo_seed

#: scenario kinds whose window is their demand's: their routes end with it (a user's network may have none)
WINDOWED_KINDS = ("builtin", "resco")

#: what holds a proposal back at the end of a step (`shield_rules` on an override), checked in this order: an
#: emergency vehicle's preemption; the yellow and all-red of a change to another phase; the shield's fallback
#: plan; the green in force, within its minimum green (its pedestrians' walk and clearance included), the only
#: time a shield keeps a green against a proposal it can serve
HELD_BY = ("preempt", "clearance", "fallback", "min_green")

#: modules whose frames a warning skips, to point at the user's line (Python 3.12's skip_file_prefixes, by hand)
_WRAPPERS = ("signalwise.envs", "gymnasium", "pettingzoo")


def _warn_caller(message: str) -> None:
    """A UserWarning attributed to the first caller outside this package and Gymnasium's or PettingZoo's
    wrappers (`gym.make`, a vector env's worker), where the call to change is."""
    frame, level = sys._getframe(1), 2  # stacklevel 2: the function that called this one
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_WRAPPERS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


class SignalwiseParallelEnv(ParallelEnv):
    metadata = {"name": "signalwise_parallel_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, scenario: str | None = None, *, duration_s: float | None = None,
                 decision_period_s: float | None = None, reward_scale: float = 1.0, render_mode: str | None = None,
                 clearance_features: bool = False, **run_options):
        """`scenario`: a built-in one or resco:NAME; none with `sumocfg=` or `net=` (your network), else "single".
        `decision_period_s`: None = the period `signalwise run` decides at under the timing profile.
        `clearance_features`: the observation also holds the phase a yellow and all-red lead to, a yellow flag and
        the clearance time left (`observation.py`; n_phases + 2 values more).
        `run_options` are `RunConfig` fields: sumocfg=, net=, routes=, seed=, step_length_s=, timing=, shield=."""
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported; use None (watch a run with "
                             "`signalwise run --gui`)")
        if decision_period_s is not None and not (decision_period_s > 0 and math.isfinite(decision_period_s)):
            raise ValueError(f"decision_period_s must be a positive number of seconds, not {decision_period_s!r}")
        if not math.isfinite(reward_scale):  # a NaN scale would make every reward NaN, silently
            raise ValueError(f"reward_scale must be a finite number, not {reward_scale!r}")
        if not isinstance(clearance_features, bool):  # "no" would read as True
            raise ValueError(f"clearance_features must be True or False, not {clearance_features!r}")
        self.render_mode = None
        self.config = RunConfig(scenario=scenario, duration_s=duration_s, **run_options)
        if decision_period_s is None:
            # the profile puts its decision step in the controller options, as `signalwise run` reads it
            decision_period_s = float(self.config.controller_options.get("period_s", PERIOD_S))
        steps = decision_period_s / self.config.step_length_s
        if abs(steps - round(steps)) > 1e-6:
            # SUMO advances whole steps: 2.5 s at 1 s steps would silently be 3 s, and the steps drift
            raise ValueError(f"decision_period_s must be a whole number of simulation steps "
                             f"(step_length_s {self.config.step_length_s:g}), not {decision_period_s!r}")
        self.scenario = resolve_scenario(self.config)
        self.end_s = self.scenario.begin_s + (duration_s if duration_s is not None else self.scenario.duration_s)
        if self.end_s > self.scenario.end_s and self.scenario.kind in WINDOWED_KINDS:
            _warn_caller(f"duration_s {duration_s:g} runs past {self.config.scenario_label}'s window "
                         f"({self.scenario.begin_s:g}-{self.scenario.end_s:g} s, {self.scenario.duration_s:g} s), "
                         f"where its demand ends: the episode's last {self.end_s - self.scenario.end_s:g} s "
                         "only drain the vehicles still driving")
        self.decision_period_s = float(decision_period_s)
        self.reward_scale = float(reward_scale)
        inters, lane_length_m = probe_network(self.config, self.scenario)
        self.intersections = {i.id: i for i in inters}
        self._observers = {i.id: PhaseQueueObservation(i, lane_length_m, clearance_features,
                                                       self.config.step_length_s) for i in inters}
        self._lanes = tuple(dict.fromkeys(lane for o in self._observers.values() for lane in o.lanes))
        self.possible_agents = [i.id for i in inters]
        self._action_spaces = {i.id: spaces.Discrete(len(i.phases)) for i in inters}
        self.state_space = spaces.Box(0.0, 1.0, shape=(sum(o.space.shape[0] for o in self._observers.values()),),
                                      dtype=np.float32)
        self._latest: dict[str, np.ndarray] = {}  # each agent's latest observation: the state's parts
        self.agents: list[str] = []
        self._episode: Episode | None = None
        self._last: Episode | None = None  # the episode audit() reports on, kept after it ends
        #: the generator of unseeded resets' SUMO seeds (Gymnasium's `np_random`); `reset(seed=s)` seeds it. Never
        #: seeded, it starts from the `seed=` run option: a fixed default, so a script's episodes repeat
        self.np_random, self.np_random_seed = seeding.np_random(self.config.seed)

    # -- spaces -----------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Box:
        """The same object on every call (PettingZoo seeds and compares them by identity)."""
        return self._observers[agent].space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    # -- episode ----------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None and int(seed) < 0:
            raise ValueError(f"seed must be 0 or more (as Gymnasium's), not {seed!r}")
        self._close_episode()
        if seed is not None:
            sumo_seed = given_sumo_seed(seed)
            self.np_random, self.np_random_seed = seeding.np_random(int(seed))
        else:
            sumo_seed = drawn_sumo_seed(self.np_random)
        self._episode = self._last = Episode(self.config, self.scenario, sumo_seed, self.end_s)
        got = [i.id for i in self._episode.intersections]
        if got != self.possible_agents:
            self._close_episode()
            raise RuntimeError(f"the network's signals changed between probe and reset: {got} vs "
                               f"{self.possible_agents}")
        self.agents = list(self.possible_agents)
        obs = self._observe()
        infos = {a: self._info(a, None, False, []) | {"sumo_seed": sumo_seed} for a in self.agents}
        return obs, infos

    def step(self, actions: dict):
        ep = self._episode
        if ep is None or not self.agents:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        proposed: dict[str, int] = {}
        for agent, action in actions.items():  # every action checked before any reaches a shield
            if agent not in self._action_spaces:
                raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
            proposed[agent] = self._phase_index(agent, action)
        for agent, a in proposed.items():
            ep.propose(agent, a)
        standing = {a: self._standing(a) for a in self.agents}  # this step's, or an earlier one still held
        seen = {a: len(ep.shields[a].interventions) for a in self.agents}
        samples = ep.advance(self.decision_period_s)
        cost = halting_vehicle_seconds(samples, self.config.step_length_s)
        agents = self.agents
        obs = self._observe()
        # 0.0 - x: a step with nothing halting rewards 0.0, not -0.0 (which prints, logs and hashes differently)
        rewards = {a: 0.0 - self.reward_scale * cost.get(a, 0.0) for a in agents}
        truncated = ep.done
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        infos = {}
        for a in agents:
            # each rule once: a step can hold two greens (each notes its minimum green once per proposer) or
            # two proposers, and a list to count by rule is read as "which rules acted"
            rules = list(dict.fromkeys(iv.rule for iv in ep.shields[a].interventions[seen[a]:]))
            p = standing[a]
            override = p is not None and not self._serving(a, p)
            if override and (held := self._held_by(a)) not in rules:
                rules.append(held)
            infos[a] = self._info(a, p, override, rules)
        if truncated:
            self.agents = []
            self._close_episode()  # frees libsumo at once; the record stays for audit(), the figures for metrics()
            for a in agents:
                infos[a]["episode_metrics"] = None if ep.summary is None else dict(ep.summary)
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """Every agent's latest observation in `possible_agents` order, concatenated: what a centralised critic
        (MAPPO, QMIX) reads. After the episode's last step, its last state."""
        if not self._latest:
            raise RuntimeError("no episode yet: call reset() first")
        return np.concatenate([self._latest[a] for a in self.possible_agents])

    def audit(self) -> AuditReport:
        """The independent safety checker on the last episode's event log and signal states (so far)."""
        if self._last is None:
            raise RuntimeError("no episode yet: call reset() first")
        return self._last.audit()

    def metrics(self) -> dict[str, float | int]:
        """The last episode's network figures once it has ended (its last infos' "episode_metrics"), until the
        next reset: `avg_delay_s` is metrics.json's, RESCO's delay over every vehicle."""
        ep = self._last
        if ep is None or self._episode is not None:
            raise RuntimeError("no episode has ended: step one until truncation, then ask for its metrics")
        if ep.summary is None:
            raise RuntimeError("the episode ended early (close() before truncation), or ran on a SUMO started "
                               "elsewhere (remote_port), whose outputs are its own: it has no metrics")
        return dict(ep.summary)

    def close(self) -> None:
        self._close_episode()

    def __enter__(self) -> SignalwiseParallelEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(self) -> None:
        return None

    # -- helpers ----------------------------------------------------------------------
    def _close_episode(self) -> None:
        if self._episode is not None:
            self._episode.close()
            self._episode = None

    def _phase_index(self, agent: str, action) -> int:
        """The action as a phase index of `agent`'s Discrete space; ValueError for anything else (2.7 is not 2)."""
        n = self._action_spaces[agent].n
        try:
            value = np.asarray(action).item()
            a = int(value)
        except (TypeError, ValueError):
            a, value = None, None
        if a is None or isinstance(value, bool) or a != value or not 0 <= a < n:
            raise ValueError(f"action {action!r} of {agent} is not a phase index in 0..{n - 1}")
        return a

    def _observe(self) -> dict[str, np.ndarray]:
        ep = self._episode
        t = ep.time_s
        lanes = ep.lane_counts(self._lanes)
        obs = {a: self._observers[a].encode(ep.shields[a].status(t), lanes) for a in self.agents}
        self._latest = obs
        return obs

    def _standing(self, agent: str) -> int | None:
        """The proposal the agent's shield holds: its last one, until the signal starts that phase's green."""
        proposal = self._episode.shields[agent].proposal
        return None if proposal is None else proposal.phase_index

    def _serving(self, agent: str, phase: int) -> bool:
        sh = self._last.shields[agent]
        return sh.phase == phase if sh.interval == "green" else sh.next_phase == phase

    def _held_by(self, agent: str) -> str:
        """Why the signal is not serving the agent's proposal now (`HELD_BY`), from its shield's state."""
        sh = self._last.shields[agent]
        if sh.preempt_active:
            return "preempt"
        if sh.interval != "green":
            return "clearance"
        return "fallback" if sh.in_fallback else "min_green"

    def _info(self, agent: str, proposed: int | None, override: bool, rules: list[str]) -> dict:
        sh = self._last.shields[agent]
        return {"time_s": self._last.time_s, "phase": sh.phase, "interval": sh.interval,
                "next_phase": None if sh.interval == "green" else sh.next_phase,
                "proposed_phase": proposed, "shield_override": override, "shield_rules": rules}
