"""Which SUMO seed an episode runs (envs/seeds.py): the seed a reset is given, else a draw among `signalwise train`'s
training seeds from the environment's generator, which the last seed given started (a fixed one if none was).

Why: `compare` and `evaluate` hold out the small seeds, and a Gymnasium vector env seeds its copies s, s+1, ...
then resets them unseeded. Real SUMO on 10-20 s windows.
"""

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from signalwise.core.seeds import training_seed
from signalwise.envs import ENV_ID, SignalwiseEnv, SignalwiseParallelEnv
from signalwise.envs.seeds import TRAINING_SEEDS_FROM
from signalwise.training.policy_search import validation_seeds as search_validation_seeds
from signalwise.training.selection import validation_seeds

#: the seeds `compare` and `evaluate` run by default (`--seeds N` from `--first-seed 1`), far more than asked
HELD_OUT = set(range(1, 10_001))


def _unseeded(env: SignalwiseParallelEnv, n: int) -> list[tuple[int, list[float]]]:
    """(SUMO seed, every step's reward under no proposals) of `n` episodes from unseeded resets."""
    out = []
    for _ in range(n):
        _obs, infos = env.reset()
        rewards = []
        while env.agents:
            rewards.append(env.step({})[1]["C"])
        out.append((infos["C"]["sumo_seed"], rewards))
    return out


def test_a_never_seeded_environment_draws_training_seeds_the_same_on_every_run():
    with SignalwiseParallelEnv("single", duration_s=10) as env:
        first = _unseeded(env, 4)
    with SignalwiseParallelEnv("single", duration_s=10) as env:
        again = _unseeded(env, 4)
    seeds = [s for s, _r in first]
    assert again == first and len(set(seeds)) == 4
    assert TRAINING_SEEDS_FROM == training_seed(0, 0) and all(TRAINING_SEEDS_FROM <= s < 2**31 for s in seeds)
    assert not set(seeds) & (HELD_OUT | set(validation_seeds(1, 3)) | set(search_validation_seeds(1, 3)))
    with SignalwiseParallelEnv("single", duration_s=10, seed=5) as env:  # the `seed=` option starts the generator
        assert [s for s, _r in _unseeded(env, 2)] != seeds[:2]


def test_unseeded_resets_follow_the_generator_of_the_last_seed():
    """Same seeds in the same order: the same episodes. Copies seeded 10 and 11 (a vector env's) share no episode
    after their seeded first one, where counting up from the last seed made copy 0's second episode copy 1's first."""
    runs = []
    with SignalwiseParallelEnv("single", duration_s=10) as env:
        for seed in (10, 11, 10):
            _obs, infos = env.reset(seed=seed)
            runs.append([infos["C"]["sumo_seed"], *_unseeded(env, 3)])
    assert runs[0] == runs[2]
    (ten, *after_ten), (eleven, *after_eleven) = runs[0], runs[1]
    assert (ten, eleven) == (10, 11)
    drawn = [s for s, _r in after_ten + after_eleven]
    assert len(set(drawn) | {10, 11}) == 8 and min(drawn) >= TRAINING_SEEDS_FROM


def test_the_gymnasium_env_and_its_np_random_are_the_parallel_envs_one_generator():
    env = SignalwiseEnv("single", duration_s=10)
    try:
        _obs, info = env.reset(seed=10)
        assert env.np_random is env.parallel.np_random and env.np_random_seed == 10 and info["sumo_seed"] == 10
        expected = int(seeding.np_random(10)[0].integers(TRAINING_SEEDS_FROM, 2**31))
        assert env.reset()[1]["sumo_seed"] == expected  # Gymnasium's generator seeded 10 draws it
    finally:
        env.close()


def _make():
    return gym.make(ENV_ID, scenario="single", timing="benchmark", duration_s=20)


def test_vector_env_copies_run_different_traffic_after_their_seeded_first_episode():
    """An AsyncVectorEnv of two copies, reset with seed 10 (copies 10 and 11), three episodes each."""
    envs = gym.vector.AsyncVectorEnv([_make, _make])
    try:
        _obs, infos = envs.reset(seed=10)
        seeds = [list(infos["sumo_seed"])]
        while len(seeds) < 3:
            for _ in range(2):  # 20 s at 10 s steps: the second step truncates both
                envs.step(np.zeros(2, dtype=np.int64))
            infos = envs.step(np.zeros(2, dtype=np.int64))[4]  # the autoreset (Gymnasium's next-step mode)
            seeds.append(list(infos["sumo_seed"]))
    finally:
        envs.close()
    assert seeds[0] == [10, 11]
    every = [s for row in seeds for s in row]
    assert len(set(every)) == 6 and min(s for row in seeds[1:] for s in row) >= TRAINING_SEEDS_FROM
