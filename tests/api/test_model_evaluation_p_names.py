"""A registered model's last evaluation names each p after its test (`p_paired`, the one `evaluate` judges by,
and `p_welch`), whether meta.json recorded it so or, before the names, as `p_value` (Welch's) and
`p_value_paired`."""

from __future__ import annotations

from signalwise.api.routers.ml_models import _evaluation_out


def test_a_new_and_an_old_evaluation_record_give_the_same_named_p_values():
    new = _evaluation_out({"scenario": "single", "seeds": [1, 2], "p_paired": 0.117, "p_welch": 0.04})
    old = _evaluation_out({"scenario": "single", "seeds": [1, 2], "p_value_paired": 0.117, "p_value": 0.04})
    assert (new.p_paired, new.p_welch) == (old.p_paired, old.p_welch) == (0.117, 0.04)
    assert "p_value" not in new.model_dump()
