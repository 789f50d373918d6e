"""A small synthetic intersection: two through phases (one with a crosswalk) and a protected left."""

from __future__ import annotations

from signalwise.control.shield import ShieldConfig
from signalwise.core import Crosswalk, Intersection, Movement, Phase, Timing
from signalwise.runtime.config import ShieldSettings

# links: 0 N->S through, 1 S->N through, 2 E->W through, 3 W->E through, 4 E->S left, 5 crosswalk across E arm
STATES = ("GGrrrr", "rrGGrG", "rrrrGr")
#: the left (link 4) also permitted ('g') with the E-W through: phase 3 -> phase 2 takes it from 'G' to 'g' (cleared
#: first with protected_yellow), and phase 3, whose only link phase 2 serves, is outside the cycle bound's cover
PERMITTED_LEFT_STATES = ("GGrrrr", "rrGGgG", "rrrrGr")


def make_intersection(min_green=(5.0, 20.0, 5.0), max_green=(40.0, 40.0, 30.0), cycle_max=120.0,
                      yellow=3.5, all_red=2.0, walk=7.0, ped_clear=12.0, phase_yellow=(),
                      phase_all_red=(), states=STATES) -> Intersection:
    """Three phases, one with a crosswalk. `phase_yellow` / `phase_all_red`: each phase's own change interval;
    `states`: each phase's green state (`STATES` or `PERMITTED_LEFT_STATES`)."""
    movements = (
        Movement(0, "n_in_0", "s_out_0"), Movement(1, "s_in_0", "n_out_0"),
        Movement(2, "e_in_0", "w_out_0"), Movement(3, "w_in_0", "e_out_0"),
        Movement(4, "e_in_1", "s_out_1"), Movement(5, ":c_w0_0", ":c_c0_0", True),
    )
    phases = tuple(
        Phase(i, s, tuple(m for m in movements if s[m.link_index] in "Gg")) for i, s in enumerate(states)
    )
    yellow = max(phase_yellow, default=yellow)
    all_red = max(phase_all_red, default=all_red)
    timing = Timing(yellow, all_red, tuple(min_green), tuple(max_green), walk, ped_clear, 40.0, cycle_max, True,
                    tuple(phase_yellow), tuple(phase_all_red))
    return Intersection("X", phases, 6, movements, (), (Crosswalk(":c_c0", (5,), 13.2),), timing,
                        program_green_s=(20.0, 25.0, 8.0))



def shield_config(step_length_s: float = 1.0, **overrides) -> ShieldConfig:
    """The run configuration's shield defaults, with `overrides`."""
    return ShieldConfig(**{**ShieldSettings().model_dump(), **overrides}, step_length_s=step_length_s)
