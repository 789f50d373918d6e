"""A speeder that went over the threshold during the warm-up and is seen speeding in the clip is a true event.

The reported case: `vision render --duration 10 --size 400` (warm-up 10 s,
seed 1) injects a speeder whose event the simulation dates 8.4 s, before the
first frame (10.1 s), and who speeds in view until 18.7 s. The render said
"1 speeding"; the grader said "0 true events" and could not credit a report of
it. Both now count it, and a report of it is a true positive.
"""

from __future__ import annotations

import csv
import json

import pytest
from support.xvfb import xvfb_unavailable_reason
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    reason = xvfb_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from signalwise.cli import app

    out = tmp_path_factory.mktemp("render") / "clip"
    p = CliRunner().invoke(app, ["vision", "render", "--out", str(out), "--duration", "10", "--size", "400",
                                 "--warmup", "10", "--seed", "1", "--oblique-tilt", "0"])
    assert p.exit_code == 0, p.output
    return out, json.loads((out / "render.json").read_text()), p.stdout


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _write(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _perfect_pipeline(render_dir, out, t0, speeding_reports):
    """Tracks exactly on the truth (one per vehicle) and the given speeding reports: (time_s, vehicle_id)."""
    truth = [r for r in _rows(render_dir / "topdown" / "truth.csv") if r["kind"] == "vehicle"]
    _write(out / "tracks.csv", ["frame", "time_s", "track_id", "x_px", "y_px", "x_m", "y_m", "speed_mps"],
           [(r["frame"], round(float(r["time_s"]) - t0, 3), r["object_id"], r["x_px"], r["y_px"], r["x_m"], r["y_m"],
             r["speed_mps"]) for r in truth])
    _write(out / "crossings.csv", ["time_s", "track_id", "stop_line", "approach", "signal_state"], [])
    _write(out / "violations.csv", ["time_s", "track_id", "kind", "approach", "speed_mps", "evidence_path"],
           [(t, vid, "speeding", "", 20.0, "") for t, vid in speeding_reports])
    _write(out / "counts.csv", ["interval_start_s", "approach", "count"], [])
    return out


def _begun_before(render_dir, summary):
    t0, sustain_s = summary["first_frame_time_s"], summary["sustain_s"]
    return [e for e in _rows(render_dir / "violations_truth.csv") if e["kind"] == "speeding"
            and float(e["start_s"]) < t0 and float(e["end_s"]) - t0 >= sustain_s]


def test_the_render_s_count_and_the_grader_s_true_events_agree_on_a_speeder_begun_in_the_warm_up(clip, tmp_path):
    from signalwise.vision.grading import grade_run

    out, s, stdout = clip
    before = _begun_before(out, s)
    assert len(before) == 1, "the reported clip: one speeder over the threshold since the warm-up"
    event = before[0]
    assert event["injected"] == "1"
    speeding_in_file = [e for e in _rows(out / "violations_truth.csv") if e["kind"] == "speeding"]
    assert s["truth"]["speeding"]["events"] == len(speeding_in_file) == 1
    assert "1 speeding (1 injected)" in stdout and "too briefly" not in stdout

    t0 = s["first_frame_time_s"]
    report_s = round((float(event["end_s"]) - t0) / 2, 1)  # half-way through what the clip shows of it
    pipe = _perfect_pipeline(out, tmp_path / "p", t0, [(report_s, event["vehicle_id"])])
    g = grade_run(out, "topdown", pipe)["violations"]["speeding"]
    assert g["truth_events"] == s["truth"]["speeding"]["events"] == 1
    assert (g["true_positives"], g["false_positives"], g["unscored_reports"], g["missed"]) == (1, 0, 0, 0)
    assert (g["precision"], g["recall"]) == (1.0, 1.0)

    # missing it is a miss, not "nothing to grade"
    silent = _perfect_pipeline(out, tmp_path / "silent", t0, [])
    g = grade_run(out, "topdown", silent)["violations"]["speeding"]
    assert (g["truth_events"], g["missed"], g["recall"]) == (1, 1, 0.0)


def test_the_grade_command_credits_the_report(clip, tmp_path):
    from signalwise.cli import app

    out, s, _ = clip
    event = _begun_before(out, s)[0]
    t0 = s["first_frame_time_s"]
    pipe = _perfect_pipeline(out, tmp_path / "p", t0, [(round((float(event["end_s"]) - t0) / 2, 1),
                                                         event["vehicle_id"])])
    p = CliRunner().invoke(app, ["vision", "grade", "--render", str(out), "--pipeline", str(pipe)])
    # the hand-made pipeline reports this one speeder and nothing else: the other targets are missed (exit 1)
    assert p.exit_code == 1 and "target(s) MISSED" in p.output, p.output
    line = next(x for x in p.stdout.splitlines() if x.strip().startswith("speeding "))
    assert "precision 1.000 recall 1.000 (1 reported, 1 true events of which 1 injected)" in line, line
