"""Tabular Q-learning with prioritized replay, as a semi-Markov decision process.

Reward (a cost, so negative): minus the vehicle-seconds spent halting on the
intersection's approaches between two decisions, integrated with the
trapezoid rule over every observation the controller receives, scaled by
`reward_scale`. Why: the time integral of the number of halting vehicles is
the total waiting time they accumulate, so maximizing this reward minimizes
waiting-time delay directly, in the units the evaluation measures (RESCO
delay), rather than a proxy such as pressure whose optimum need not minimize
delay once clearances are counted. Because decisions are not evenly spaced
(minimum green, clearances), the discount is `gamma ** (dt / period_s)`, and
the cost inside an interval is discounted from the decision's time too.

Coordination (`downstream_weight` w > 0): the cost becomes halting vehicles
on the approaches + w * halting vehicles on the outgoing lanes, which are the
approaches of the downstream neighbours. An agent that pushes a platoon into
a neighbour's red, or onto a link that is already backed up, pays for part of
the queue it causes: a shared reward term between neighbours that needs no
message between them, only lanes the intersection already observes.

With `guide_mode="each-action"` the guide keeps acting in a state until every
action has been tried there `guide_visits` times, and a trained model does the
same when it runs: the table overrides max-pressure only where it has
estimates for all the alternatives (SPIBB, Laroche et al. 2019).

Exploration: epsilon-greedy, epsilon per episode
`max(epsilon_end, epsilon_start * epsilon_decay ** episode)`. The greedy step
is guided: in a state seen fewer than `guide_visits` times (or with no action
tried yet) the agent follows a guide policy (max-pressure by default)
instead of the table. Why: with ~250 decisions per episode and thousands of
states, an unguided greedy step mostly picks an untried (zero-valued,
optimistic) action, i.e. acts at random for dozens of episodes; following a
good classical policy where the table knows nothing gathers experience in
the states that matter, and Q-learning (off-policy) still learns the values
of the optimal policy from it. Elsewhere the greedy step takes the best
action among those tried.

Replay: every transition enters a fixed-size buffer with priority
(|TD error| + eps) ** priority_alpha; after each real update, `replay_batch`
stored transitions are drawn in proportion to priority and replayed, and
their priorities refreshed. Informative (surprising) transitions are seen
more often; stale, well-predicted ones fade.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .qtable import QTable


@dataclass(frozen=True)
class Hyper:
    gamma: float = 0.95  # per period_s of elapsed time
    alpha_min: float = 0.05  # learning rate floor; alpha = max(alpha_min, 1 / sqrt(1 + visits))
    epsilon_start: float = 0.3
    epsilon_end: float = 0.02
    epsilon_decay: float = 0.97  # per episode
    replay_capacity: int = 20_000
    replay_batch: int = 8
    priority_alpha: float = 0.6
    priority_eps: float = 0.01
    reward_scale: float = 0.01  # reward = -scale * halting vehicle-seconds
    downstream_weight: float = 0.0  # coordination: weight of halting vehicles on the outgoing lanes
    period_s: float = 5.0  # how often the controller is asked during green
    guide: str = "max-pressure"  # "max-pressure" | "none": who acts in states the table barely knows
    guide_visits: int = 30
    # "state": follow the guide while the state has < guide_visits visits in all;
    # "each-action": while any action there has < guide_visits tries (safe policy
    # improvement with baseline bootstrapping, SPIBB: deviate from the baseline
    # only where every alternative has been estimated), also when the model runs.
    guide_mode: str = "each-action"

    def epsilon(self, episode: int) -> float:
        return max(self.epsilon_end, self.epsilon_start * self.epsilon_decay ** episode)

    def to_json(self) -> dict:
        return asdict(self)


class PrioritizedReplay:
    """Transitions (s, a, r, s', discount) with TD-error priorities, in fixed numpy arrays."""

    def __init__(self, capacity: int, priority_alpha: float, priority_eps: float):
        self.capacity = capacity
        self.alpha = priority_alpha
        self.eps = priority_eps
        self.s = np.zeros(capacity, np.int64)
        self.a = np.zeros(capacity, np.int64)
        self.r = np.zeros(capacity, np.float64)
        self.s2 = np.zeros(capacity, np.int64)
        self.disc = np.zeros(capacity, np.float64)
        self.prio = np.zeros(capacity, np.float64)
        self.size = 0
        self._next = 0

    def add(self, s: int, a: int, r: float, s2: int, disc: float, td: float) -> None:
        i = self._next
        self.s[i], self.a[i], self.r[i], self.s2[i], self.disc[i] = s, a, r, s2, disc
        self.prio[i] = (abs(td) + self.eps) ** self.alpha
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, k: int) -> np.ndarray:
        p = self.prio[: self.size]
        cdf = np.cumsum(p)
        return np.searchsorted(cdf, rng.random(k) * cdf[-1], side="right").clip(0, self.size - 1)

    def set_td(self, idx: np.ndarray, td: np.ndarray) -> None:
        self.prio[idx] = (np.abs(td) + self.eps) ** self.alpha


class QLearner:
    """Epsilon-greedy action choice and Q-learning updates on one table."""

    def __init__(self, table: QTable, hyper: Hyper, rng: np.random.Generator, epsilon: float):
        self.table = table
        self.h = hyper
        self.rng = rng
        self.epsilon = epsilon
        self.replay = PrioritizedReplay(hyper.replay_capacity, hyper.priority_alpha, hyper.priority_eps)
        self.updates = 0
        self.total_reward = 0.0
        self._mean_value_cache: float | None = None
        self._mean_value_at = 0

    def act(self, state: int, guide_action: int | None = None) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.table.n_actions))
        visits = self.table.visits[state]
        tried = visits > 0
        if guide_action is not None:
            known = visits.min() if self.h.guide_mode == "each-action" else visits.sum()
            if known < self.h.guide_visits or not tried.any():
                return guide_action
        row = self.table.q[state] if guide_action is None else np.where(tried, self.table.q[state], -np.inf)
        best = np.flatnonzero(row == row.max())
        return int(best[0]) if len(best) == 1 else int(self.rng.choice(best))

    def next_value(self, s2: int) -> float:
        """max_a Q(s2, a) over the actions tried in s2; the mean of visited values where none was.

        An untried action still holds its initial 0, which with costs is far
        above any real value: bootstrapping from it would make every action
        that leads to a rarely seen state look good, and the agent would learn
        to seek novelty instead of low delay (it did: training delay rose as
        the table filled in).
        """
        t = self.table
        tried = t.visits[s2] > 0
        if tried.any():
            return float(t.q[s2][tried].max())
        return self._mean_visited_value()

    def _mean_visited_value(self) -> float:
        if self._mean_value_cache is None or self.updates - self._mean_value_at >= 500:
            seen = self.table.visits > 0
            self._mean_value_cache = float(self.table.q[seen].mean()) if seen.any() else 0.0
            self._mean_value_at = self.updates
        return self._mean_value_cache

    def _td_update(self, s: int, a: int, r: float, s2: int, disc: float, count: bool = True) -> float:
        t = self.table
        alpha = max(self.h.alpha_min, 1.0 / np.sqrt(1.0 + t.visits[s, a]))
        target = r + disc * self.next_value(s2)
        return t.update(s, a, target, alpha, count)

    def learn(self, s: int, a: int, r: float, s2: int, dt_s: float) -> float:
        disc = self.h.gamma ** (dt_s / self.h.period_s)
        td = self._td_update(s, a, r, s2, disc)
        self.replay.add(s, a, r, s2, disc, td)
        self.updates += 1
        self.total_reward += r
        if self.replay.size >= self.h.replay_batch and self.h.replay_batch > 0:
            idx = self.replay.sample(self.rng, self.h.replay_batch)
            tds = np.empty(len(idx))
            for j, i in enumerate(idx):
                tds[j] = self._td_update(int(self.replay.s[i]), int(self.replay.a[i]), float(self.replay.r[i]),
                                         int(self.replay.s2[i]), float(self.replay.disc[i]), count=False)
            self.replay.set_td(idx, tds)
        return td
