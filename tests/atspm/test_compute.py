"""The fast paths compute what the plain ones do: threads, packed counts, staged computing."""

import numpy as np
import pandas as pd
from support import atspm_synthetic as synthetic

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame
from signalwise.analytics.atspm import measures as M
from signalwise.analytics.atspm.compute import CHART_MEASURES, MEASURES, merge_results


def _log():
    frame, config = synthetic.synthetic_events(n_devices=3, hours=1, seed=3)
    return frame, detectors_from_frame(synthetic.with_yellow_red(config))


def test_threads_and_stages_give_the_tables_of_one_pass():
    frame, cfg = _log()
    one = compute_all(events_from_frame(frame), cfg)
    two = compute_all(events_from_frame(frame), cfg, threads=2)
    log = events_from_frame(frame)
    staged = merge_results(compute_all(log, cfg, only=CHART_MEASURES, threads=2),
                           compute_all(log, cfg, only=tuple(m for m in MEASURES if m not in CHART_MEASURES)))
    for other in (two, staged):
        assert list(other.tables) == list(one.tables) == list(MEASURES)
        for name, df in one.tables.items():
            pd.testing.assert_frame_equal(df, other.tables[name], obj=name)
        assert other.warnings == one.warnings


def test_packed_counts_match_a_pandas_groupby():
    rng = np.random.default_rng(0)
    n = 5000
    dense = {"TimeStamp": rng.integers(0, 8, n) * 900_000_000 + 1_736_150_400_000_000,
             "DeviceId": rng.integers(0, 5, n), "Phase": rng.integers(1, 9, n)}
    sparse = {**dense, "Offset": rng.integers(-10**9, 10**9, n)}
    for keys in (dense, sparse):
        values = {"Green": rng.integers(0, 2, n), "Seconds": rng.random(n)}
        ours, theirs = M._count(keys, values), M._count_pandas(keys, values)
        assert list(ours) == list(theirs)
        for k in ours:
            np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12)
