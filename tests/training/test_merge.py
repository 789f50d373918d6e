"""Merging the tables a round's workers trained — no SUMO."""

from __future__ import annotations

import numpy as np
import pytest

from signalwise.control.learning.qtable import QTable, StateEncoding
from signalwise.training.train import merge_tables


def test_merge_of_one_worker_is_that_worker_and_visits_add_up():
    base = QTable(StateEncoding(("state",), (16,)), 4)  # the merge reads only values and visits
    a = base.writable()
    a.update(5, 1, -4.0, 1.0)
    merged = merge_tables({"C": base}, [{"episode": 0, "tables": {"C": (a.q, a.visits)}}])["C"]
    np.testing.assert_array_equal(merged.q, a.q)
    b = base.writable()
    b.update(5, 1, -8.0, 1.0)
    b.update(5, 1, -8.0, 1.0)  # b visited (5, 1) twice: weight 3 vs a's 2
    merged = merge_tables({"C": base}, [{"episode": 0, "tables": {"C": (a.q, a.visits)}},
                                        {"episode": 1, "tables": {"C": (b.q, b.visits)}}])["C"]
    assert merged.visits[5, 1] == 3
    assert merged.q[5, 1] == pytest.approx((2 * -4.0 + 3 * -8.0) / 5)
    assert merged.q[6].tolist() == [0.0] * 4
