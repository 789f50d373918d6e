"""A live run fed by detectors measures no wait: the model-performance figures leave its intervals' waits out
rather than averaging them in as 0 s, the best wait there is."""

from signalwise.analytics.model_performance import live_intervals


def _interval(wait_s):
    return {"intersection_id": "C", "timestamp": "2026-11-28T10:00:00", "simulation_id": "live-1",
            "metrics": {"avg_wait_time_all_sides": wait_s, "throughput": 0.5, "total_vehicles_passed": 12}}


def test_unmeasured_waits_are_left_out_of_the_live_figures():
    source = live_intervals([_interval(None), _interval(30.0), _interval(None)], "C", None, "")
    by_name = {f["metric"]: f for f in source.figures}
    assert by_name["avg_wait_s"]["candidate"]["mean"] == 30.0 and by_name["avg_wait_s"]["candidate"]["n"] == 1
    assert by_name["vehicles_passed"]["candidate"]["n"] == 3


def test_a_run_that_measured_no_wait_has_no_wait_figure():
    source = live_intervals([_interval(None), _interval(None)], "C", None, "")
    assert "avg_wait_s" not in {f["metric"] for f in source.figures}
