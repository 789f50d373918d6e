"""A timing value refused under the safety profile is refused with the bound that applies under it: a 1 s yellow
was told 'greater than or equal to 2' (every profile's floor, the benchmark's) while the safety profile's floor is
3 s, and 2.5 s was then told 3."""

import pytest
from pydantic import ValidationError
from support.cli import signalwise

from signalwise.runtime.config import RunConfig


@pytest.mark.parametrize(("timing", "said"), [
    ({"yellow_s": 1}, "yellow_s (1) must be at least 3 under the safety profile"),
    ({"yellow_s": 2.5}, "yellow_s (2.5) must be at least 3 under the safety profile"),
    ({"per_intersection": {"J3": {"yellow_s": 1}}}, "per_intersection.J3: yellow_s (1) must be at least 3 under"),
    ({"max_green_s": 90000}, "max_green_s (90000) must be at most 300 under the safety profile"),
    ({"cycle_max_s": 100000}, "cycle_max_s (100000) must be at most 600 under the safety profile"),
    ({"ped_walking_speed_mps": 3}, "ped_walking_speed_mps (3) must be at most 1.22 m/s"),
], ids=["yellow 1", "yellow 2.5", "a signal's yellow 1", "max green", "cycle max", "walking speed"])
def test_the_safety_profiles_bound_is_the_one_said(timing, said):
    with pytest.raises(ValidationError) as err:
        RunConfig.model_validate({"timing": timing})
    text = str(err.value)
    assert said in text, text
    assert "greater than or equal to" not in text and "less than or equal to" not in text, text


def test_under_the_benchmark_profile_its_own_bound_is_said():
    with pytest.raises(ValidationError, match="greater than or equal to 2"):
        RunConfig.model_validate({"timing": {"profile": "benchmark", "yellow_s": 1}})
    assert RunConfig.model_validate({"timing": {"profile": "benchmark", "yellow_s": 2}}).timing.yellow_s == 2.0


def test_the_command_line_refusal_of_a_1_s_yellow_names_the_3_s_floor(tmp_path):
    config = tmp_path / "bad_y1.yaml"
    config.write_text("timing:\n  yellow_s: 1\n")
    done = signalwise("run", "-s", "corridor", "-c", "actuated", "--config", str(config), "--duration", "120",
                      "--out", str(tmp_path / "runs"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: invalid timing.yellow_s: yellow_s (1) must be at least 3 under the safety profile"), done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
