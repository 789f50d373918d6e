"""A camera file's speed limit is in metres per second; one written in km/h or mph is refused, not obeyed."""

import pytest

from signalwise.vision.camera import CameraFileError, camera_from_dict

CALIBRATION = [{"px": [0, 0], "m": [0, 0]}, {"px": [100, 0], "m": [10, 0]}, {"px": [100, 100], "m": [10, 10]},
               {"px": [0, 100], "m": [0, 10]}]


def _camera(**keys) -> dict:
    return {"camera_id": "cam", "device_id": "C", "calibration": CALIBRATION, **keys}


@pytest.mark.parametrize("limit", [50, 40.5, 100])
def test_a_limit_above_any_signalised_road_is_refused_with_the_conversions(limit):
    with pytest.raises(CameraFileError) as err:
        camera_from_dict(_camera(speed_limit_mps=limit), "cam.yaml")
    msg = str(err.value)
    assert msg.startswith("cam.yaml: speed_limit_mps: ") and "metres per second" in msg
    assert f"{limit:g} km/h is {limit / 3.6:.2f}" in msg and f"{limit:g} mph is {limit * 0.44704:.2f}" in msg


@pytest.mark.parametrize("limit", [13.89, 40])
def test_a_limit_in_metres_per_second_is_kept(limit):
    assert camera_from_dict(_camera(speed_limit_mps=limit)).speed_limit_mps == limit
