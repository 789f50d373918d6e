"""Fully actuated control: extend green while detectors see traffic.

Each phase holds its green while a vehicle crossed one of its detectors within
the passage (gap) time; when the gap exceeds it the phase gaps out to the next
phase, in order, that has a call (vehicles waiting on its lanes). A phase
with no vehicle lanes (an exclusive pedestrian phase, a mid-block crossing's
walk) is always called (pedestrian recall): pedestrians are not in the lane
data. No call elsewhere: rest in green. Max-out is the shield's maximum green.

Every change it proposes is a gap-out (event 4): it asks for one only once
the passage timer of the green has expired. It keeps no maximum of its own;
the shield logs its max-outs (event 5).

The passage is `controller_options.passage_s`: one number for every phase,
or per signal and phase, as a timing sheet gives it
(`{default: 3, J1: {1: 2.0, 2: 4.0}, J3: 2.5}`: a signal's number is every
phase of it; a phase or signal not named takes `default`, else 3 s). Phases
are numbered as the event log numbers them (1 for the first).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..core.types import Decision, EventCode, Intersection, Observation
from .base import ControlContext, ControllerUnavailable, register

PASSAGE_S = 3.0
#: the longest passage a phase takes: NTCIP 1202's phase passage parameter runs 0-25.5 s
PASSAGE_MAX_S = 25.5
#: the key of a `passage_s` mapping that gives the passage of every signal and phase it does not name
PASSAGE_DEFAULT_KEY = "default"
_FORM = ("passage_s takes seconds (every phase), or a mapping {default: seconds, <signal>: seconds | {<phase "
         "number>: seconds}}")


def _seconds(value) -> float | None:
    """`value` as seconds (a number, or a number's text as a command line or a form sends it); None if it is not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _seconds_error(value, where: str) -> str | None:
    seconds = _seconds(value)
    if seconds is None or seconds != seconds:  # NaN
        return f"{where} {value!r} is not a number of seconds: {_FORM}"
    if not 0 <= seconds <= PASSAGE_MAX_S:
        return f"{where} {seconds:g} s is outside 0-{PASSAGE_MAX_S:g} s (NTCIP 1202's range of a phase's passage)"
    return None


def _phase_number(key) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        return key if key >= 1 else None
    return int(key) if isinstance(key, str) and key.strip().isdigit() and int(key) >= 1 else None


def passage_option_error(value) -> str | None:
    """Why `value` cannot be the `passage_s` option (its form, its seconds, a phase that is not a number); None
    when it can. Which phases a signal has is checked when its controller is built (`phase_passages_s`)."""
    if not isinstance(value, Mapping):
        return _seconds_error(value, "passage_s")
    for signal, own in value.items():
        where = f"passage_s.{signal}"
        if not isinstance(own, Mapping):
            why = _seconds_error(own, where)
        elif str(signal) == PASSAGE_DEFAULT_KEY:
            why = f"{where} is every other signal's passage: seconds, not a mapping of phases"
        else:
            why = next((f"{where}: {key!r} is not a phase number (1 for the first, as the event log numbers them)"
                        if _phase_number(key) is None else _seconds_error(s, f"{where}.{key}")
                        for key, s in own.items() if _phase_number(key) is None or _seconds_error(s, "")), None)
        if why:
            return why
    return None


def phase_passages_s(value, inter: Intersection) -> tuple[float, ...]:
    """Each phase's passage at signal `inter` (indexed like its phases) from the `passage_s` option; a phase the
    signal does not have is refused (ControllerUnavailable), its phases listed."""
    why = passage_option_error(value)
    if why:
        raise ControllerUnavailable(why)
    n = len(inter.phases)
    if not isinstance(value, Mapping):
        return (_seconds(value),) * n
    default = _seconds(value.get(PASSAGE_DEFAULT_KEY, PASSAGE_S))
    own = value.get(inter.id, default)
    if not isinstance(own, Mapping):
        return (_seconds(own),) * n
    by_phase = {_phase_number(k): _seconds(s) for k, s in own.items()}
    unknown = sorted(k for k in by_phase if k > n)
    if unknown:
        raise ControllerUnavailable(f"controller_options.passage_s.{inter.id} names phase "
                                    f"{', '.join(map(str, unknown))}, which signal {inter.id!r} does not have: it "
                                    f"has phases 1..{n}")
    return tuple(by_phase.get(p.number, default) for p in inter.phases)


class ActuatedController:
    name = "actuated"
    observation = "counts"
    wants_detectors = True

    def __init__(self, inter: Intersection, passage_s: float | tuple[float, ...] = PASSAGE_S, step_s: float = 1.0):
        self.inter = inter
        #: each phase's passage (gap) time, s (indexed like the phases: `phase_passages_s`)
        self.phase_passage_s = ((float(passage_s),) * len(inter.phases) if isinstance(passage_s, (int, float))
                                else tuple(float(p) for p in passage_s))
        #: the passage of every phase when they have one, else None (each its own: `phase_passage_s`)
        self.passage_s = self.phase_passage_s[0] if len(set(self.phase_passage_s)) == 1 else None
        self.period_s = step_s
        lane_dets: dict[str, list[str]] = {}
        for d in inter.detectors:
            lane_dets.setdefault(d.lane, []).append(d.id)
        self._phase_dets = [tuple(d for lane in p.in_lanes for d in lane_dets.get(lane, ())) for p in inter.phases]
        self._phase_lanes = [p.in_lanes for p in inter.phases]
        #: phases serving pedestrians only: on recall
        self._recall = [not p.in_lanes for p in inter.phases]
        self.detector_ids = tuple(d.id for d in inter.detectors)

    def decide(self, obs: Observation) -> Decision:
        s = obs.signal
        if s is None or s.interval != "green":
            return Decision(self.inter.id, None, self.name)
        c = s.phase_index
        idle = obs.detector_idle_s
        if any(idle.get(d, 1e9) < self.phase_passage_s[c] for d in self._phase_dets[c]):
            return Decision(self.inter.id, None, self.name)  # extend
        n = len(self.inter.phases)
        for k in range(1, n):
            p = (c + k) % n
            if self._has_call(p, obs):
                return Decision(self.inter.id, p, self.name, termination=EventCode.PHASE_GAP_OUT)
        return Decision(self.inter.id, None, self.name)  # rest in green

    def _has_call(self, p: int, obs: Observation) -> bool:
        if self._recall[p]:
            return True
        lanes = obs.lanes
        if any(lanes[lane].queue_veh > 0 for lane in self._phase_lanes[p] if lane in lanes):
            return True
        return any(obs.detector_idle_s.get(d, 1e9) == 0.0 for d in self._phase_dets[p])


@register("actuated")
def make_actuated(inter: Intersection, ctx: ControlContext) -> ActuatedController:
    return ActuatedController(inter, phase_passages_s(ctx.options.get("passage_s", PASSAGE_S), inter),
                              ctx.step_length_s)
