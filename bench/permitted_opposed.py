"""An experiment, not a shipped controller: max-pressure whose permitted movements weigh by the opposing flow.

A permitted left (SUMO's 'g') discharges only in the gaps of the flow it yields to, so while that flow's
vehicles stand or move on the approach its queue is served slowly; max-pressure weighs it whole
(docs/benchmarks.md, "Permitted movements"). Here, in each phase, a permitted movement that another phase serves
protected weighs max(floor, 1 - N_opposing / opp_veh) of its incoming density, N_opposing the vehicles on the
incoming lanes green in the same phase that SUMO gives right of way over it (`lane.getFoes`). A movement with no
protected alternative keeps its whole weight: lowering it only takes service from the one phase that gives it.

    signalwise compare -s resco:ingolstadt7 -c max-pressure,py:bench/permitted_opposed.py:make --seeds 3
    # options: --config FILE with  controller_options: {user: {opp_veh: 16, opp_floor: 0.5}}

It reads the foes from the libsumo simulation of the process it runs in (a `compare` or `run`), so it does not
run against a remote SUMO (`--remote`) or a live feed.
"""

from __future__ import annotations

import libsumo

from signalwise.control.max_pressure import make_max_pressure
from signalwise.control.zones import MIN_LANE_M

#: opposing vehicles at which a permitted movement weighs nothing (before the floor)
OPP_VEH = 8.0
#: the least weight a permitted movement keeps
OPP_FLOOR = 0.0


def _opposed_terms(inter) -> list[list[tuple[str, tuple[str, ...]]]]:
    """Per phase: each permitted movement with a protected alternative, as (incoming lane, the incoming lanes green
    in that phase which SUMO gives right of way over it)."""
    protected = {m.link_index for p in inter.phases for m in p.movements if p.green_state[m.link_index] == "G"}
    terms = []
    for p in inter.phases:
        green_in = {m.in_lane for m in p.movements if not m.is_crosswalk}
        own = []
        for m in p.movements:
            if m.is_crosswalk or p.green_state[m.link_index] != "g" or m.link_index not in protected:
                continue
            foes = (set(libsumo.lane.getFoes(m.in_lane, m.out_lane)) & green_in) - {m.in_lane}
            if foes:
                own.append((m.in_lane, tuple(sorted(foes))))
        terms.append(own)
    return terms


def make(inter, ctx):
    user = ctx.options.get("user", {})
    opp_veh, floor = float(user.get("opp_veh", OPP_VEH)), float(user.get("opp_floor", OPP_FLOOR))
    ctl = make_max_pressure(inter, ctx)
    per_100m = {lane: 100.0 / max(length, MIN_LANE_M) for lane, length in ctx.lane_length_m.items()}
    terms = _opposed_terms(inter)
    whole = ctl.pressures

    def pressures(obs):
        out = list(whole(obs))
        lanes = obs.lanes
        for phase, own in enumerate(terms):
            for lane, foes in own:
                state = lanes.get(lane)
                if state is None:
                    continue
                opposing = sum(lanes[f].count_veh for f in foes if f in lanes)
                weight = max(floor, 1.0 - opposing / opp_veh)
                out[phase] -= (1.0 - weight) * state.count_veh * per_100m.get(lane, 1.0)
        return out

    ctl.pressures = pressures
    ctl.name = "max-pressure-opposed"
    return ctl


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(
        description="A py: controller for `signalwise compare`, not a script to run: "
                    "signalwise compare -s resco:ingolstadt7 -c max-pressure,py:bench/permitted_opposed.py:make "
                    "--seeds 3 (options under controller_options: {user: {opp_veh, opp_floor}} in a --config file)"
    ).parse_args()
