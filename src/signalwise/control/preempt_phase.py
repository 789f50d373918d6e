"""The phase a preemption call on one link is served with: one rule for the shield and the live preemption input.

The shield serves an emergency vehicle's call with this phase (`IntersectionShield`), and the live input
(`runtime.live.preempt`) answers a dispatch call with the phase the shield will serve, so both read it here.
"""

from __future__ import annotations

from ..core.types import Intersection


def phase_serving_link(inter: Intersection, link: int) -> int | None:
    """The index of the first phase giving `link` a protected green ('G'), else of the first giving it a permitted
    one ('g'); None for a link no phase serves or that is not this signal's (a negative index would read one from
    the end of the state string)."""
    if not 0 <= link < inter.n_links:
        return None
    best = None
    for p in inter.phases:
        ch = p.green_state[link] if link < len(p.green_state) else "r"
        if ch == "G":
            return p.index
        if ch == "g" and best is None:
            best = p.index
    return best
