"""Which SUMO seeds a training episode runs, kept apart from the small seeds evaluation reports on.

Here, not in `training`, because two stages draw from it: `training` for its episodes and `envs` for an
unseeded reset, and `envs` depends on nothing above `runtime`.
"""

from __future__ import annotations


def training_seed(seed: int, episode: int) -> int:
    """The SUMO seed of a training episode: far from the small seeds evaluation uses."""
    return 1_000_000 + seed * 100_000 + episode
