"""An override's phase and duration are read strictly: a client's bug must not place an override at a live signal.

Lax parsing held phase 1 for `"phase_number": true` and took `"duration_s": "60"` (a security auditor's finding);
the same JSON the API receives is checked here, through the model the route declares."""

from __future__ import annotations

import json

import pydantic
import pytest

from signalwise.runtime.live.changes import OverrideChange

BASE = {"intersection_id": "J1", "action": "hold"}


@pytest.mark.parametrize(("phase_number", "duration_s"), [
    (True, 60), ("2", 60), (2.0, 60),  # a boolean, a string, a float for the phase
    (2, "60"), (2, True),  # a string, a boolean for the duration
])
def test_a_phase_or_duration_of_the_wrong_json_type_is_refused(phase_number, duration_s):
    body = json.dumps({**BASE, "phase_number": phase_number, "duration_s": duration_s})
    with pytest.raises(pydantic.ValidationError):
        OverrideChange.model_validate_json(body)


def test_numbers_as_json_numbers_are_taken():
    held = OverrideChange.model_validate_json(json.dumps({**BASE, "phase_number": 2, "duration_s": 60}))
    assert (held.phase_number, held.duration_s) == (2, 60.0)
    assert OverrideChange.model_validate_json(json.dumps({**BASE, "phase_number": 3, "duration_s": 12.5})).duration_s \
        == 12.5
