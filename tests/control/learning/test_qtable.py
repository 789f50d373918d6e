"""Q-table: mixed-radix encoding, updates, the artifact on disk and its failure modes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalwise.control.learning.qtable import (
    FORMAT_VERSION,
    Model,
    ModelError,
    QTable,
    StateEncoding,
    layout_fingerprint,
    load_model,
    save_model,
)


@st.composite
def encoding_and_digits(draw):
    radices = draw(st.lists(st.integers(1, 7), min_size=1, max_size=8))
    digits = [draw(st.integers(0, r - 1)) for r in radices]
    return StateEncoding(tuple(f"d{i}" for i in range(len(radices))), tuple(radices)), digits


@given(encoding_and_digits())
@pytest.mark.slow
def test_encode_decode_round_trip_and_index_in_range(case):
    enc, digits = case
    idx = enc.encode(digits)
    assert 0 <= idx < enc.n_states
    assert list(enc.decode(idx)) == digits


def test_encoding_is_a_bijection_on_a_small_space():
    enc = StateEncoding(("phase", "time", "q"), (3, 2, 4))
    indices = {enc.encode((a, b, c)) for a in range(3) for b in range(2) for c in range(4)}
    assert indices == set(range(24))
    assert enc.encode((1, 0, 0)) == 8  # first digit most significant
    with pytest.raises(ValueError):
        enc.encode((3, 0, 0))


def test_update_moves_toward_target_and_counts_only_real_visits():
    t = QTable(StateEncoding(("s",), (5,)), 3)
    td = t.update(2, 1, -10.0, 0.5)
    assert td == -10.0 and t.q[2, 1] == pytest.approx(-5.0) and t.visits[2, 1] == 1
    t.update(2, 1, -10.0, 0.5, count=False)
    assert t.q[2, 1] == pytest.approx(-7.5) and t.visits[2, 1] == 1
    assert t.best_action(2) in (0, 2)  # untried actions stay at 0: optimistic


def _model(layout=None, seed=0) -> Model:
    enc = StateEncoding(("phase", "q0"), (4, 6))
    rng = np.random.default_rng(seed)
    t = QTable(enc, 4, rng.normal(size=(24, 4)).astype(np.float32), rng.integers(0, 9, (24, 4)).astype(np.uint32))
    layout = layout or {"phases": ["Gr", "rG"], "lane_groups": [["a_0"], ["b_0"]]}
    return Model(None, {"J": t}, {"J": "J"}, {"J": layout}, {"scenario": "test", "hyperparameters": {"gamma": 0.9}})


def test_artifact_round_trip_is_memory_mapped_and_carries_metadata(tmp_path):
    m = _model()
    save_model(tmp_path / "m", m)
    loaded = load_model(tmp_path / "m")
    t = loaded.table_for("J")
    assert isinstance(t.q, np.memmap)
    np.testing.assert_array_equal(t.q, m.tables["J"].q)
    np.testing.assert_array_equal(t.visits, m.tables["J"].visits)
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION and meta["scenario"] == "test"
    for key in ("signalwise", "created", "tables", "intersections", "hyperparameters"):
        assert key in meta
    assert meta["intersections"]["J"]["layout_fingerprint"] == layout_fingerprint(m.layouts["J"])
    with pytest.raises(ValueError):  # read-only mapping: a deployed model cannot be changed by accident
        t.q[0, 0] = 1.0
    w = t.writable()
    w.update(0, 0, 5.0, 1.0)
    assert w.q[0, 0] == 5.0 and load_model(tmp_path / "m").table_for("J").q[0, 0] != 5.0


def test_another_layout_fails_with_a_clear_error(tmp_path):
    save_model(tmp_path / "m", _model())
    loaded = load_model(tmp_path / "m")
    loaded.check_layout("J", {"phases": ["Gr", "rG"], "lane_groups": [["a_0"], ["b_0"]]})
    with pytest.raises(ModelError, match="another layout.*lane_groups"):
        loaded.check_layout("J", {"phases": ["Gr", "rG"], "lane_groups": [["a_0"], ["c_0"]]})
    with pytest.raises(ModelError, match="not intersection 'K'"):
        loaded.check_layout("K", {})


@pytest.mark.parametrize("damage, needle", [
    ("missing_dir", "no such model"),
    ("no_meta", "no meta.json"),
    ("bad_json", "unreadable model metadata"),
    ("wrong_version", "format version"),
    ("truncated_table", "corrupted table"),
    ("missing_table", "table file missing"),
    ("garbage_table", "corrupted table"),
])
def test_damaged_artifacts_give_one_clear_error(tmp_path, damage, needle):
    path = tmp_path / "m"
    save_model(path, _model())
    if damage == "missing_dir":
        path = tmp_path / "nope"
    elif damage == "no_meta":
        (path / "meta.json").unlink()
    elif damage == "bad_json":
        (path / "meta.json").write_text("{not json")
    elif damage == "wrong_version":
        meta = json.loads((path / "meta.json").read_text())
        meta["format_version"] = 99
        (path / "meta.json").write_text(json.dumps(meta))
    elif damage == "truncated_table":
        data = (path / "q-J.npy").read_bytes()
        (path / "q-J.npy").write_bytes(data[: len(data) // 2])
    elif damage == "missing_table":
        (path / "n-J.npy").unlink()
    elif damage == "garbage_table":
        (path / "q-J.npy").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match=needle) as err:
        load_model(path)
    assert "\n" not in str(err.value)
