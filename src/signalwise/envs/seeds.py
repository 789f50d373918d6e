"""Which SUMO seed an episode runs: the seed a reset is given, else a draw from the environment's generator.

Why draws, and from where: `signalwise compare` and `evaluate` report on the
small seeds (1, 2, 3, ... by default), so an environment that counted up
from 1 by itself would train on exactly the traffic its agent is later
judged on. A Gymnasium vector env seeds its copies s, s+1, ... and then
resets them without a seed: counting up from the last seed would make copy
k's episode j copy k+1's episode j-1. So an unseeded reset draws from the
environment's own generator (Gymnasium's `np_random`, which `reset(seed=s)`
seeds; copies seeded s and s+1 draw unrelated streams), inside the training
seeds of `signalwise train` (`core.seeds.training_seed`, 1,000,000 up
to SUMO's largest seed): never one of the small held-out seeds, nor one of
train's validation seeds, which sit below (`training.selection` and
`training.policy_search`, for a train `--seed` under 400).
"""

from __future__ import annotations

import numpy as np

from ..core.seeds import training_seed

#: SUMO's --seed is a 32-bit signed integer, and a Gymnasium seed any int >= 0 (Stable-Baselines3's
#: `VecEnv.seed()` draws up to 2**32 - 1): a seed wraps into SUMO's range, and one below it is `run --seed`'s
SUMO_SEEDS = 2**31

#: the lowest SUMO seed an unseeded reset draws: the first of `signalwise train`'s training seeds
TRAINING_SEEDS_FROM = training_seed(0, 0)


def given_sumo_seed(seed: int) -> int:
    """The SUMO seed of `reset(seed=seed)`: the seed itself, wrapped into SUMO's range."""
    return int(seed) % SUMO_SEEDS


def drawn_sumo_seed(rng: np.random.Generator) -> int:
    """The SUMO seed of a reset without a seed: uniform over the training seeds."""
    return int(rng.integers(TRAINING_SEEDS_FROM, SUMO_SEEDS))
