"""A configured clearance the simulation step cannot show as given is said: a 4.5 s yellow at 1 s steps runs as
5 s, and the run warns once, naming the signals, the value configured and the value run. Real SUMO runs of the
built-in corridor, the yellow measured in the hi-res event log."""

import pytest

from signalwise.core.eventlog import read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run


def _run(tmp_path, step_s, timing):
    cfg = RunConfig(scenario="corridor", controller="actuated", duration_s=120, step_length_s=step_s,
                    timing=timing, emissions=False, record="lean", evidence="inline")
    return execute_run(cfg, tmp_path / f"run-{step_s:g}")


def _yellows(run_dir, device):
    began, out = {}, set()
    for e in read_events(run_dir / "events.csv"):
        if e.device_id == device and e.event_code == 8:
            began[e.parameter] = e.time_s
        elif e.device_id == device and e.event_code == 9 and e.parameter in began:
            out.add(round(e.time_s - began.pop(e.parameter), 3))
    return out


def test_a_yellow_the_step_rounds_up_is_said_once_with_the_value_run(tmp_path):
    timing = {"yellow_s": 4.0, "all_red_s": 2.0, "per_intersection": {"J3": {"yellow_s": 4.5}}}
    result = _run(tmp_path, 1.0, timing)
    said = [w for w in result.metrics.get("warnings", ()) if "runs as" in w]
    assert said == ["timing.per_intersection.J3.yellow_s 4.5 s runs as 5 s at signal(s) J3: at 1 s steps each "
                    "yellow is shown in whole steps, rounded up (step_length_s 0.5 shows it exactly)"]
    assert _yellows(result.run_dir, "J3") == {5.0}  # what the warning says runs
    assert _yellows(result.run_dir, "J2") == {4.0}  # a whole number of steps: shown as configured, not said

    exact = _run(tmp_path, 0.5, timing)
    assert not [w for w in exact.metrics.get("warnings", ()) if "runs as" in w]
    assert _yellows(exact.run_dir, "J3") == {4.5}


def test_one_line_names_every_signal_a_network_wide_value_is_rounded_at(tmp_path):
    result = _run(tmp_path, 1.0, {"yellow_s": 3.5, "all_red_s": 1.5})
    said = [w for w in result.metrics.get("warnings", ()) if "runs as" in w]
    assert said == [
        "timing.yellow_s 3.5 s runs as 4 s at signal(s) J1, J2, J3, J4, J5: at 1 s steps each yellow is shown in "
        "whole steps, rounded up (step_length_s 0.5 shows it exactly)",
        "timing.all_red_s 1.5 s runs as 2 s at signal(s) J1, J2, J3, J4, J5: at 1 s steps each red clearance is "
        "shown in whole steps, rounded up (step_length_s 0.5 shows it exactly)"]


@pytest.mark.parametrize(("value", "step", "exact"), [(4.5, 1.0, 0.5), (3.3, 1.0, 0.1), (3.25, 0.5, 0.25),
                                                      (4.0, 1.0, 0.5)])
def test_the_step_suggested_shows_the_value_exactly(value, step, exact):
    from signalwise.runtime.step_rounding import exact_step_s

    assert exact_step_s(value, step) == exact


def test_clearances_derived_from_the_geometry_are_not_said(tmp_path):
    """ITE's 3.3 s yellow at 50 km/h is a minimum, shown as 4 s at 1 s steps as docs/configuration.md says: no
    policy value was changed, so no line on every run."""
    result = _run(tmp_path, 1.0, {})
    assert not [w for w in result.metrics.get("warnings", ()) if "runs as" in w]
    assert _yellows(result.run_dir, "J2") == {4.0}


def test_a_live_run_says_it_as_it_starts(tmp_path, caplog):
    import logging

    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    cfg = RunConfig(scenario="corridor", controller="actuated",
                    timing={"yellow_s": 4.0, "all_red_s": 2.0, "per_intersection": {"J3": {"yellow_s": 4.5}}})
    rt = LiveRuntime(cfg, LiveOptions(speed=None, duration_s=5, in_process=True, state_every_s=60), tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="signalwise.live"):
        rt.open()
    try:
        said = [r.getMessage() for r in caplog.records if "runs as" in r.getMessage()]
        assert said == ["timing.per_intersection.J3.yellow_s 4.5 s runs as 5 s at signal(s) J3: at 1 s steps each "
                        "yellow is shown in whole steps, rounded up (step_length_s 0.5 shows it exactly)"]
    finally:
        rt.run()
