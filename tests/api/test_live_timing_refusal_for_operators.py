"""A live timing change past the safety profile's limits is refused with the limit and where it comes from, never
pointing the operator of a street's signals at the benchmark profile's rules (2 s yellows, no all-red).

Found in a trial: `PUT /api/v1/live/config/timing {"timing": {"yellow_s": 2}}` answered "... (the benchmark and
reference profiles have their own rules: --timing benchmark on run, compare and train, or timing: {profile:
benchmark} in a --config file; ...)". A run configuration (`run`, `compare`, `train`) keeps that hint: choosing a
profile is what those commands are for. A real uvicorn serving a real live run of `single` (SUMO in-process).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from support.loopback import serving_live

from signalwise.runtime.config import RunConfig
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

TIMING = "/api/v1/live/config/timing"
LIVE_PROFILE = "the safety profile, which this live run keeps until it ends"


@pytest.fixture
def served(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _info, key = create_key(get_engine(db), "ops", ["read", "operate"])
    with serving_live(Settings(database_url=db), tmp_path / "live", speed=20.0,
                      headers={"X-API-Key": key}) as pair:
        yield pair


@pytest.mark.parametrize(("timing", "said"), [
    ({"yellow_s": 2}, "timing: yellow_s (2) must be at least 3 under the safety profile: 3 s is the shortest yellow "
                      "change interval MUTCD 4D.26 allows (3 to 6 s) (runtime/profiles.py SAFETY_LIMITS), and "
                      f"{LIVE_PROFILE}"),
    ({"max_green_s": 400}, "timing: max_green_s (400) must be at most 300 under the safety profile: 300 s is the "
                           "safety profile's longest maximum green (runtime/profiles.py SAFETY_LIMITS), and "
                           f"{LIVE_PROFILE}"),
    ({"ped_intervals": False}, "timing: ped_intervals false leaves pedestrians without walk and clearance: "
                               f"{LIVE_PROFILE} times them at every crosswalk"),
])
def test_a_live_timing_refusal_says_the_limit_and_its_source_not_another_profile(served, timing, said):
    client, rt = served
    r = client.put(TIMING, json={"timing": timing})
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert message == f"change refused: {said}", message
    assert "benchmark" not in message and "reference" not in message and "--timing" not in message
    signal = rt.stepper.intersections[0].id
    one = client.put(f"{TIMING}/intersections/{signal}", json={"timing": {"yellow_s": 2.5}})
    assert one.status_code == 422 and "benchmark" not in one.json()["message"], one.text
    assert one.json()["message"].startswith(f"change refused: timing: per_intersection.{signal}: yellow_s (2.5) "
                                            "must be at least 3 under the safety profile: 3 s is"), one.text


def test_a_run_configuration_still_names_the_profiles_that_allow_it():
    with pytest.raises(ValidationError) as refused:
        RunConfig.model_validate({"scenario": "single", "timing": {"yellow_s": 2}})
    assert "--timing benchmark on run, compare and train" in str(refused.value)
