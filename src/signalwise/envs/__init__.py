"""Reinforcement-learning environments over signalwise scenarios, with the safety shield in the loop.

`SignalwiseParallelEnv` (PettingZoo parallel API, one agent per signal) and
`SignalwiseEnv` (Gymnasium, single-signal scenarios; also
`gymnasium.make("signalwise.envs:signalwise/Signalwise-v0", scenario=...)`: Gymnasium 1.x has no plugin
entry points, so the `module:` prefix is what imports this registration in a fresh process). They drive the
run loop's own step (`runtime.loop.LoopStepper`), so agents are held to the
same shield as every controller, `audit()` hands an episode's event log
to the independent checker, and `metrics()` gives an ended episode's network
figures as `signalwise run` computes them (RESCO's average delay, ...).
`PhaseQueueObservation` builds the agents' observation, also from a
controller's inputs, to run a trained policy as a `py:` controller
(docs/learning.md).

A package of its own rather than `control/learning/`: an environment drives
SUMO and the runtime loop, and `control` must not (it talks to `core` only).
Needs the optional extra: `pip install 'signalwise[rl]'` (gymnasium, pettingzoo).
"""

try:
    import gymnasium
    import pettingzoo  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(f"signalwise.envs needs gymnasium and pettingzoo: pip install 'signalwise[rl]' ({exc})") from None

from .observation import PhaseQueueObservation
from .parallel import SignalwiseParallelEnv
from .single import SignalwiseEnv

ENV_ID = "signalwise/Signalwise-v0"
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="signalwise.envs.single:SignalwiseEnv")

__all__ = ["ENV_ID", "PhaseQueueObservation", "SignalwiseEnv", "SignalwiseParallelEnv"]
