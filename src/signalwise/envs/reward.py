"""An agent's reward: minus the halting vehicle-seconds on its approaches since its last step.

The same quantity the tabular Q-learning agent is rewarded with
(`control/learning/agent.py`): the time integral of the number of halting
vehicles (speed < 0.1 m/s) on the intersection's incoming lanes, i.e. the
waiting time they accumulated. Why: maximizing it minimizes waiting-time
delay directly, in the units the evaluation reports. The tabular agent
integrates it by the trapezoid rule over its 5 s observations; here it is
summed at every simulation step (halting vehicles after the step x step
length), from the samples the loop already takes, so it is exact at SUMO's
resolution and costs no extra SUMO reads.
"""

from __future__ import annotations

from collections.abc import Sequence


def halting_vehicle_seconds(samples: Sequence[tuple[float, str, int]], step_length_s: float) -> dict[str, float]:
    """Per intersection, sum of (halting vehicles x step length) over `samples` (time, id, halting) taken every step."""
    out: dict[str, float] = {}
    for _t, tls_id, halting in samples:
        out[tls_id] = out.get(tls_id, 0.0) + halting * step_length_s
    return out
