"""`grade_run` and `signalwise vision grade` on files: a render's truth against perfect and damaged copies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalwise.cli import app
from signalwise.vision.grading import grade_run, targets


def _signalwise(*args):
    """The command in this process (a subprocess spends most of its time importing)."""
    return CliRunner().invoke(app, list(args))
FPS = 10.0
T0 = 100.0  # simulation time of the first frame
NET_TO_PX = [[4.0, 0.0, 0.0], [0.0, -4.0, 400.0], [0.0, 0.0, 1.0]]  # x_px = 4 x_m, y_px = 400 - 4 y_m


def _write(path: Path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture
def render_dir(tmp_path):
    """Two vehicles over 100 frames: V1 drives east at 10 m/s, V2 waits (stopped) then crosses; one person."""
    out = tmp_path / "render"
    rows = []
    for f in range(100):
        t = T0 + f / FPS
        x1 = 10.0 + f * 1.0  # 10 m/s
        # 4 px/m (net_to_px below); a car 4.5 m x 1.75 m, its front bumper 2.25 m ahead of its centre
        rows.append((f, t, "V1", "vehicle", "car", x1, 50.0, x1 * 4, 200.0, x1 * 4 - 9, 196.5, x1 * 4 + 9, 203.5,
                     10.0, 0, 1.0, "W_C_1", x1 + 2.25, 50.0))
        stopped = f < 50
        y2 = 20.0 if stopped else 20.0 + (f - 50) * 0.5
        rows.append((f, t, "V2", "vehicle", "car", 60.0, y2, 240.0, 400 - y2 * 4, 236.5, 400 - y2 * 4 - 9, 243.5,
                     400 - y2 * 4 + 9, 0.0 if stopped else 5.0, int(stopped), 1.0, "S_C_1", 60.0, y2 + 2.25))
        rows.append((f, t, "P1", "person", "person", 5.0, 5.0, 20.0, 380.0, 19.0, 379.0, 21.0, 381.0, 1.0, 0,
                     1.0, "", 5.0, 5.2))
    _write(out / "topdown" / "truth.csv", ["frame", "time_s", "object_id", "kind", "vtype", "x_m", "y_m", "x_px",
                                           "y_px", "x1", "y1", "x2", "y2", "speed_mps", "stopped", "visible",
                                           "lane", "front_x_m", "front_y_m"], rows)
    _write(out / "crossings_truth.csv", ["time_s", "vehicle_id", "device_id", "lane", "link_index", "stop_line",
                                         "approach", "signal_state", "link_state", "speed_mps", "red"],
           [(T0 + 3.0, "V1", "C", "W_C_1", 13, "w", "west", "rr", "r", 10.0, 1),
            (T0 + 8.0, "V2", "C", "S_C_1", 9, "s", "south", "gG", "G", 5.0, 0),
            (T0 - 5.0, "V0", "C", "S_C_1", 9, "s", "south", "gG", "G", 5.0, 0)])  # before the first frame
    _write(out / "violations_truth.csv", ["time_s", "vehicle_id", "kind", "approach", "speed_mps", "start_s",
                                          "end_s", "injected"],
           [(T0 + 3.0, "V1", "red_light", "west", 10.0, T0 + 3.0, T0 + 3.0, 1)])
    (out / "render.json").write_text(json.dumps({"first_frame_time_s": T0, "frames": 100, "fps": FPS,
                                                 "speed_threshold_mps": 15.89,
                                                 "views": {"topdown": {"net_to_px": NET_TO_PX}}}))
    return out


def _anchor_m(r: dict, anchor: str) -> tuple[float, float]:
    """Where a perfect track with this anchor puts the vehicle of truth row `r`, in road metres."""
    if anchor == "front":
        return float(r["front_x_m"]), float(r["front_y_m"])
    if anchor == "bottom":  # the box's bottom centre, taken to the road as the pipeline takes it
        return (float(r["x1"]) + float(r["x2"])) / 2 / 4, (400 - float(r["y2"])) / 4
    return float(r["x_m"]), float(r["y_m"])


def _perfect_pipeline(render_dir: Path, out: Path, damage: str | None = None, anchor: str = "center") -> Path:
    with open(render_dir / "topdown" / "truth.csv") as fh:
        truth = [r for r in csv.DictReader(fh) if r["kind"] == "vehicle"]
    tracks, dets = [], []
    for r in truth:
        f = int(r["frame"])
        tid = {"V1": "1", "V2": "2"}[r["object_id"]]
        if damage == "switch" and r["object_id"] == "V1" and f >= 50:
            tid = "7"  # V1's track changes identity half-way
        if damage == "stopped-missed" and r["object_id"] == "V2" and r["stopped"] == "1":
            continue  # a motion detector never sees V2 while it waits
        t = f / FPS
        speed = float(r["speed_mps"]) + (1.0 if damage == "fast" else 0.0)
        tracks.append((f, t, tid, r["x_px"], r["y_px"], *_anchor_m(r, anchor), speed))
        dets.append((f, t, r["x1"], r["y1"], r["x2"], r["y2"], 0.9))
    _write(out / "tracks.csv", ["frame", "time_s", "track_id", "x_px", "y_px", "x_m", "y_m", "speed_mps"], tracks)
    _write(out / "detections.csv", ["frame", "time_s", "x1", "y1", "x2", "y2", "score"], dets)
    _write(out / "crossings.csv", ["time_s", "track_id", "stop_line", "approach", "signal_state"],
           [(3.0, "1", "w", "west", "rr"), (8.0, "2", "s", "south", "gG")])
    _write(out / "violations.csv", ["time_s", "track_id", "kind", "approach", "speed_mps", "evidence_path"],
           [(3.1, "1", "red_light", "west", 10.0, "evidence/1.jpg")])
    _write(out / "counts.csv", ["interval_start_s", "approach", "count"], [(0, "west", 1), (0, "south", 1)])
    return out


def test_a_perfect_copy_scores_perfectly(render_dir, tmp_path):
    report = grade_run(render_dir, "topdown", _perfect_pipeline(render_dir, tmp_path / "p"))
    det = report["detection"]
    assert (det["recall_moving"], det["recall_stopped"], det["precision"]) == (1.0, 1.0, 1.0)
    tr = report["tracking"]
    assert (tr["mota"], tr["idf1"], tr["hota"], tr["id_switches"]) == (1.0, 1.0, pytest.approx(1.0), 0)
    assert report["speed"]["rmse_mps"] == 0.0 and report["speed"]["pairs"] == 200
    assert report["counts"] == {"south": {"truth": 1, "counted": 1, "relative_error": 0.0},
                                "west": {"truth": 1, "counted": 1, "relative_error": 0.0}}
    red = report["violations"]["red_light"]
    assert (red["precision"], red["recall"], red["truth_events"]) == (1.0, 1.0, 1)
    assert all(t.met for t in targets(report) if "events" not in t.name)
    # one red-light event is far from the 30 a violation target needs
    assert not [t for t in targets(report) if "red_light" in t.name][0].met


def test_damaged_copies_lose_what_was_damaged(render_dir, tmp_path):
    fast = grade_run(render_dir, "topdown", _perfect_pipeline(render_dir, tmp_path / "fast", "fast"))
    assert fast["speed"]["rmse_mps"] == pytest.approx(1.0) and fast["speed"]["bias_mps"] == pytest.approx(1.0)

    switch = grade_run(render_dir, "topdown", _perfect_pipeline(render_dir, tmp_path / "switch", "switch"))
    tr = switch["tracking"]
    assert tr["mota"] == pytest.approx(1 - 1 / 200) and tr["id_switches"] == 1
    # V1 = 50 frames of track 1 and 50 of track 7: IDTP 150 of 200 -> IDF1 0.75; AssA (1 + 0.5) / 2 weighted
    assert tr["idf1"] == pytest.approx(0.75)
    assert tr["assa"] == pytest.approx((100 * 1.0 + 50 * 0.5 + 50 * 0.5) / 200)
    # the red-light report names track 1 at 3.1 s, which is still V1: the violation stays right
    assert switch["violations"]["red_light"]["precision"] == 1.0

    missed = grade_run(render_dir, "topdown", _perfect_pipeline(render_dir, tmp_path / "m", "stopped-missed"))
    det = missed["detection"]
    assert (det["recall_moving"], det["recall_stopped"], det["precision"]) == (1.0, 0.0, 1.0)


@pytest.mark.slow
def test_the_grade_command_prints_figures_and_targets(render_dir, tmp_path):
    pipe = _perfect_pipeline(render_dir, tmp_path / "p")
    p = _signalwise("vision", "grade", "--render", str(render_dir), "--pipeline", str(pipe),
                    "--json", str(tmp_path / "grade.json"))
    assert "recall moving 1.000" in p.stdout and "MOTA 1.000" in p.stdout and "targets" in p.stdout
    # a perfect red-light precision on one event is missed for want of events, and the line says so; a missed
    # target fails the command (CI reads the exit status)
    red = next(line for line in p.stdout.splitlines() if "red_light precision" in line)
    assert "1.000" in red and "MISSED (too few events to grade: 1 of the 30 needed)" in red
    assert p.exit_code == 1 and p.stdout.rstrip().endswith("2 target(s) MISSED"), (p.exit_code, p.stdout)
    assert "warning" not in p.stderr
    # a pipeline run stopped early, over fewer frames than the render filmed: graded, and said so
    (pipe / "summary.json").write_text(json.dumps({"status": "interrupted", "frames": 60}))
    p = _signalwise("vision", "grade", "--render", str(render_dir), "--pipeline", str(pipe))
    assert p.exit_code == 1, p.stderr
    assert f"warning: {pipe} did not run to the end (interrupted)" in p.stderr
    assert f"warning: {pipe} processed 60 frames, {render_dir} filmed 100" in p.stderr
    p = _signalwise("vision", "grade", "--render", str(render_dir), "--pipeline", str(pipe), "--json",
                    str(tmp_path / "no-such-dir" / "g.json"))
    assert p.exit_code == 2 and "no directory" in p.stderr and "Errno" not in p.stderr, p.stderr
    assert json.loads((tmp_path / "grade.json").read_text())["speed"]["rmse_mps"] == 0.0


@pytest.mark.parametrize("damage,needle", [
    ("no-render", "no render.json"),
    ("bad-header", "tracks.csv: header is"),
    ("no-view", "no view 'oblique'"),
])
def test_bad_input_gets_one_error_line(render_dir, tmp_path, damage, needle):
    pipe = _perfect_pipeline(render_dir, tmp_path / "p")
    view = "topdown"
    target = render_dir
    if damage == "no-render":
        target = tmp_path / "nothing"
    elif damage == "bad-header":
        (pipe / "tracks.csv").write_text("frame;time\n1;2\n")
    else:
        view = "oblique"
    p = _signalwise("vision", "grade", "--render", str(target), "--pipeline", str(pipe), "--view", view)
    assert p.exit_code == 2 and p.stderr.startswith("error:") and needle in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_bench_on_a_directory_that_is_no_render_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "nothing").mkdir()
    out = tmp_path / "bench"
    p = _signalwise("vision", "bench", "--out", str(out), "--render", str(tmp_path / "nothing"), "--loop-duration", "0")
    assert p.exit_code == 2, p.stderr
    assert p.stderr.startswith("error: --render ") and "no render.json (not a `signalwise vision render` directory)" \
        in p.stderr and "Errno" not in p.stderr
    assert not out.exists()


def test_bench_on_an_interrupted_render_and_renders_and_loops_of_nothing_are_one_line(tmp_path):
    """A render stopped by Ctrl-C has no views: bench ended in a KeyError. A render shorter than one step claimed
    success with 0 frames, then failed on its last line; a camera loop over a 0 m view divided by zero after its
    first run."""
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "render.json").write_text(json.dumps({"status": "incomplete", "reason": "interrupted"}))
    out = tmp_path / "bench"
    p = _signalwise("vision", "bench", "--out", str(out), "--render", str(stopped), "--loop-duration", "0")
    assert p.exit_code == 2 and "the render did not complete (incomplete)" in p.stderr, p.stderr
    assert not out.exists()
    p = _signalwise("vision", "render", "--out", str(tmp_path / "r"), "--duration", "0.05", "--warmup", "5")
    assert p.exit_code == 2 and "shorter than one --step" in p.stderr and not (tmp_path / "r").exists(), p.stderr
    p = _signalwise("vision", "loop", "--out", str(tmp_path / "l"), "--view-m", "0", "--duration", "30")
    assert p.exit_code == 2 and "--view-m must be positive" in p.stderr and not (tmp_path / "l").exists(), p.stderr


def test_a_report_with_nothing_to_divide_is_strict_json():
    """A count error of 0 of 0 is NaN in Python; `json.dumps` wrote it bare, which no JSON reader takes."""
    import numpy as np

    from signalwise.vision.grading import report_json

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    text = report_json({"counts": {"relative_error": float("nan")}, "views": [np.float64("inf"), np.int64(3)]})
    assert json.loads(text, parse_constant=refuse) == {"counts": {"relative_error": None}, "views": [None, 3]}


@pytest.mark.parametrize("command", [["render", "--duration", "10"], ["bench", "--duration", "10"],
                                     ["loop", "--duration", "30"]])
def test_an_out_that_is_a_file_is_one_usage_error(tmp_path, command):
    """It was `error: FILE: File exists` with exit 1, after the command had started."""
    (tmp_path / "afile").write_text("a file\n")
    p = _signalwise("vision", command[0], "--out", str(tmp_path / "afile"), *command[1:])
    assert p.exit_code == 2 and f"--out {tmp_path / 'afile'}: {tmp_path / 'afile'} is not a directory" in p.stderr


@pytest.mark.parametrize("command", ["render", "bench", "loop"])
def test_an_unknown_scenario_names_the_choices_these_commands_take(tmp_path, command):
    """They take a scenario by name only: the refusal suggested --sumocfg / --net, which they do not have."""
    p = _signalwise("vision", command, "--out", str(tmp_path / "o"), "--scenario", "atlantis")
    assert p.exit_code == 2 and "unknown scenario 'atlantis'; choose from single" in p.stderr, p.stderr
    assert "--sumocfg" not in p.stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize("anchor", ["front", "bottom"])
@pytest.mark.slow
def test_a_track_is_graded_against_the_point_of_the_vehicle_its_anchor_stands_for(render_dir, tmp_path, anchor):
    """A `front` track is 2.25 m from the car's centre, past the 2 m match: graded against centres, a perfect
    tracker missed every vehicle. Its summary.json says its anchor; the grader takes the same point of each
    vehicle (front bumper, or the bottom centre of its box on the road)."""
    pipe = _perfect_pipeline(render_dir, tmp_path / anchor, anchor=anchor)
    (pipe / "summary.json").write_text(json.dumps({"status": "complete", "frames": 100, "anchor": anchor}))
    report = grade_run(render_dir, "topdown", pipe)
    tr = report["tracking"]
    assert report["anchor"] == anchor
    assert (tr["mota"], tr["idf1"], tr["hota"], tr["id_switches"]) == (1.0, 1.0, pytest.approx(1.0), 0)
    assert report["violations"]["red_light"]["precision"] == 1.0  # the report's track names its vehicle too
    p = _signalwise("vision", "grade", "--render", str(render_dir), "--pipeline", str(pipe))
    assert f"of each vehicle's {'front bumper' if anchor == 'front' else 'box bottom centre'} (anchor {anchor})" \
        in p.stdout, p.stdout
    # the same tracks taken for centres: off by the anchor's distance from the centre
    (pipe / "summary.json").write_text(json.dumps({"status": "complete", "frames": 100, "anchor": "center"}))
    off = grade_run(render_dir, "topdown", pipe)["tracking"]
    assert off["hota"] < 0.9 and (anchor != "front" or off["mota"] < 0.5), off


def test_a_run_that_does_not_say_its_anchor_is_graded_against_centres_and_told(render_dir, tmp_path):
    pipe = _perfect_pipeline(render_dir, tmp_path / "p")
    (pipe / "summary.json").write_text(json.dumps({"status": "complete", "frames": 100}))
    assert grade_run(render_dir, "topdown", pipe)["anchor"] == "center"
    p = _signalwise("vision", "grade", "--render", str(render_dir), "--pipeline", str(pipe))
    assert "does not say the camera's anchor (an older run): its tracks were graded against vehicle centres" \
        in p.stderr, p.stderr


def test_a_front_anchor_on_a_render_without_front_points_is_one_line(render_dir, tmp_path):
    truth = render_dir / "topdown" / "truth.csv"
    rows = list(csv.reader(truth.open()))
    _write(truth, rows[0][:-2], [r[:-2] for r in rows[1:]])  # a render from before front_x_m, front_y_m
    pipe = _perfect_pipeline(render_dir, tmp_path / "p")
    (pipe / "summary.json").write_text(json.dumps({"status": "complete", "frames": 100, "anchor": "front"}))
    p = _signalwise("vision", "grade", "--render", str(render_dir), "--pipeline", str(pipe))
    assert p.exit_code == 2 and "truth.csv has no front_x_m, front_y_m" in p.stderr, p.stderr


def test_the_grade_command_exits_0_when_no_target_is_missed(render_dir, tmp_path):
    """n/a is not a miss: a clip with no violation, graded on a perfect run that reported none, passes."""
    _write(render_dir / "violations_truth.csv", ["time_s", "vehicle_id", "kind", "approach", "speed_mps", "start_s",
                                                 "end_s", "injected"], [])
    pipe = _perfect_pipeline(render_dir, tmp_path / "p")
    _write(pipe / "violations.csv", ["time_s", "track_id", "kind", "approach", "speed_mps", "evidence_path"], [])
    p = _signalwise("vision", "grade", "--render", str(render_dir), "--pipeline", str(pipe))
    lines = [line for line in p.stdout.splitlines() if "events)" in line]
    assert len(lines) == 4 and all(line.rstrip().endswith("n/a (nothing to grade: no true event in the clip)")
                                   or line.rstrip().endswith("n/a (nothing to grade: no report to score)")
                                   for line in lines), p.stdout
    assert p.exit_code == 0 and "MISSED" not in p.stdout, p.stdout
