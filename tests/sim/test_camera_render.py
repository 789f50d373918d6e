"""A short rendered clip of `single` under Xvfb: the truth lines up with the frames it describes.

One render (10 simulated seconds, 100 frames, top-down and oblique) is shared
by the module; every check reads the written files, as a user would.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from support.xvfb import xvfb_unavailable_reason

cv2 = pytest.importorskip("cv2")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    reason = xvfb_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from signalwise.sim.camera import FaultPlan, RenderOptions, render

    out = tmp_path_factory.mktemp("render") / "clip"
    # faults due every 2 s so that a 10 s clip holds both kinds (the same seed always renders the same clip)
    result = render(RenderOptions(scenario="single", out_dir=out, duration_s=10.0, warmup_s=30.0, seed=1,
                                  faults=FaultPlan(red_light_every_s=2.0, speeder_every_s=2.0)))
    return out, result.summary


def _frames(path, n=None):
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while n is None or len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _truth(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _view(summary, name):
    return np.array(summary["views"][name]["net_to_px"])


def _to_px(h, x, y):
    p = h @ np.array([x, y, 1.0])
    return p[:2] / p[2]


def test_the_video_has_every_frame_at_the_frame_rate(clip):
    out, s = clip
    assert s["frames"] == 100 and s["fps"] == 10.0
    for view in ("topdown", "oblique"):
        cap = cv2.VideoCapture(str(out / view / "video.avi"), cv2.CAP_FFMPEG)
        assert cap.isOpened()
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
        assert len(_frames(out / view / "video.avi")) == 100


def test_a_known_road_point_lands_on_its_pixel(clip):
    """The white centre line of the north arm (x = 250 m) and of the west arm (y = 250 m) sit where the view says."""
    out, s = clip
    frame = _frames(out / "topdown" / "video.avi", 1)[0]
    h = _view(s, "topdown")
    white = frame.min(axis=2) > 200
    for (x, y), axis in (((250.0, 330.0), "x"), ((180.0, 250.0), "y")):
        px, py = _to_px(h, x, y)
        if axis == "x":  # a row across the north arm: white pixels around the centre line's column
            cols = np.flatnonzero(white[int(round(py)), int(px) - 12: int(px) + 13]) + int(px) - 12
            assert cols.size and abs(cols.mean() - px) <= 2.0, (cols, px)
        else:  # a column across the west arm
            rows = np.flatnonzero(white[int(py) - 12: int(py) + 13, int(round(px))]) + int(py) - 12
            assert rows.size and abs(rows.mean() - py) <= 2.0, (rows, py)
    assert s["calibration"]["marker_error_px"] <= 2.0


def _paint_share(frame, x1, y1, x2, y2, colourful_only=False):
    """The share of a box's pixels in one of the renderer's vehicle colours (without silver: like kerb grey)."""
    from signalwise.sim.camera.render import PALETTE

    patch = frame[int(round(y1)): int(round(y2)) + 1, int(round(x1)): int(round(x2)) + 1].astype(int)
    if not patch.size:
        return 0.0
    colours = [c for c in PALETTE if max(c) - min(c) > 30] if colourful_only else PALETTE
    bgr = np.array([c[::-1] for c in colours])
    dist = np.abs(patch[:, :, None, :] - bgr[None, None, :, :]).max(axis=3).min(axis=2)
    return float((dist <= 40).mean())


@pytest.mark.parametrize("view", ["topdown", "oblique"])
def test_vehicles_sit_in_their_pixel_boxes(clip, view):
    """Each vehicle is painted in one of the renderer's colours: its own box holds that paint, a box moved
    one vehicle length along the road mostly does not."""
    out, _s = clip
    frames = _frames(out / view / "video.avi")
    own, moved = [], []
    for r in _truth(out / view / "truth.csv"):
        if r["kind"] != "vehicle" or float(r["visible"]) < 1.0 or float(r["speed_mps"]) < 3.0:
            continue  # moving vehicles, so the moved box is not the next car of a queue
        f = frames[int(r["frame"])]
        x1, y1, x2, y2 = (float(r[k]) for k in ("x1", "y1", "x2", "y2"))
        own.append(_paint_share(f, x1, y1, x2, y2))
        w, hgt = x2 - x1, y2 - y1
        dx, dy = (1.5 * w, 0) if w > hgt else (0, 1.5 * hgt)
        moved.append(_paint_share(f, x1 + dx, y1 + dy, x2 + dx, y2 + dy))
    assert len(own) > 100
    # windows, outlines and (oblique) interpolation are not paint: about a quarter of a box is
    assert np.median(own) > 0.15, (np.median(own), np.median(moved))
    assert np.median(own) > 3 * np.median(moved) + 0.1, (np.median(own), np.median(moved))


def test_frames_and_truth_are_in_step(clip):
    _out, s = clip
    a = s["alignment"]
    assert a["checked"] > 50 and a["best_offset_frames"] == 0
    assert a["colour_share_in_own_box"] > a["colour_share_one_frame_earlier"] + 0.05
    assert a["colour_share_in_own_box"] > a["colour_share_one_frame_later"] + 0.05


def test_the_oblique_view_is_the_top_down_view_warped(clip):
    """Each oblique pixel is the top-down pixel the known warp sends there; the truth follows the same map."""
    out, s = clip
    top = _frames(out / "topdown" / "video.avi", 5)[4]
    obl = _frames(out / "oblique" / "video.avi", 5)[4]
    h_top, h_obl = _view(s, "topdown"), _view(s, "oblique")
    warp = h_obl @ np.linalg.inv(h_top)
    expected = cv2.warpPerspective(top, warp, (obl.shape[1], obl.shape[0]))
    diff = np.abs(expected.astype(int) - obl.astype(int)).max(axis=2)
    assert np.percentile(diff, 99) <= 40  # JPEG noise only
    top_rows = {r["object_id"]: r for r in _truth(out / "topdown" / "truth.csv") if r["frame"] == "4"}
    obl_rows = {r["object_id"]: r for r in _truth(out / "oblique" / "truth.csv") if r["frame"] == "4"}
    assert set(obl_rows) <= set(top_rows) and len(obl_rows) > 5
    for oid, r in obl_rows.items():
        t = top_rows[oid]
        assert (r["x_m"], r["y_m"]) == (t["x_m"], t["y_m"])
        cx, cy = _to_px(h_obl, float(t["x_m"]), float(t["y_m"]))
        assert (float(r["x_px"]), float(r["y_px"])) == pytest.approx((cx, cy), abs=0.01)


def test_injected_faults_become_true_events(clip):
    out, s = clip
    faults = _truth(out / "faults.csv")
    assert {f["kind"] for f in faults} == {"red_light", "speeding"}
    events = _truth(out / "violations_truth.csv")
    red = [e for e in events if e["kind"] == "red_light"]
    speeding = [e for e in events if e["kind"] == "speeding"]
    assert red and all(e["injected"] == "1" for e in red)
    assert speeding and all(float(e["speed_mps"]) > s["speed_threshold_mps"] for e in speeding)
    assert all(float(e["end_s"]) - float(e["start_s"]) >= 0 for e in speeding)
    crossings = {(c["vehicle_id"], c["time_s"]): c for c in _truth(out / "crossings_truth.csv")}
    for e in red:  # the runner crossed its stop line while its own link showed red
        c = crossings[(e["vehicle_id"], e["time_s"])]
        assert c["link_state"] == "r" and c["red"] == "1"
        assert set(c["signal_state"]) == {"r"}
    runners = {f["vehicle_id"] for f in faults if f["kind"] == "red_light"}
    assert {e["vehicle_id"] for e in red} <= runners
    # ordinary vehicles stay under the threshold: every speeding event is an injected speeder
    assert all(e["injected"] == "1" for e in speeding)


def test_the_camera_file_follows_the_contract(clip):
    out, s = clip
    signals = _truth(out / "signal_states.csv")
    assert list(signals[0]) == ["time_s", "device_id", "state"]
    assert float(signals[0]["time_s"]) <= s["first_frame_time_s"]
    n_links = len(signals[0]["state"])
    for view in ("topdown", "oblique"):
        cam = yaml.safe_load((out / view / "camera.yaml").read_text())
        assert cam["camera_id"] == f"sim-{view}" and cam["device_id"] == "C"
        assert len(cam["calibration"]) >= 4
        src = np.array([c["px"] for c in cam["calibration"]], dtype=np.float32)
        dst = np.array([c["m"] for c in cam["calibration"]], dtype=np.float32)
        hom, _ = cv2.findHomography(src, dst)
        # the junction centre, through the camera file's own calibration
        centre_px = _to_px(_view(s, view), 250.0, 250.0)
        back = hom @ np.array([*centre_px, 1.0])
        assert back[:2] / back[2] == pytest.approx([250.0, 250.0], abs=0.05)
        assert {sl["approach"] for sl in cam["stop_lines"]} == {"north", "south", "east", "west"}
        assert len(cam["stop_lines"]) == 8  # through-and-right lanes and the protected left lane, per approach
        for sl in cam["stop_lines"]:
            assert sl["links"] and max(sl["links"]) < n_links
        w, h = cam["frame_size"]
        assert cam["anchor"] == "center" and cam["speed_sustain_s"] == s["sustain_s"]
        for z in cam["zones"]:
            p = np.array(z["px"])
            assert (p[:, 0] >= 0).all() and (p[:, 0] < w).all() and (p[:, 1] >= 0).all() and (p[:, 1] < h).all()
        assert cam["speed_limit_mps"] == pytest.approx(13.89) and cam["speed_tolerance_mps"] == 2.0
    summary = json.loads((out / "render.json").read_text())
    assert summary["status"] == "complete"


def test_the_empty_road_frame_has_no_vehicle_on_it(clip):
    out, _s = clip
    for view in ("topdown", "oblique"):
        cam = yaml.safe_load((out / view / "camera.yaml").read_text())
        background = cv2.imread(str(out / view / cam["background_image"]))
        first = _frames(out / view / "video.avi", 1)[0]
        assert background.shape == first.shape
        assert _paint_share(background, 0, 0, background.shape[1] - 1, background.shape[0] - 1, True) < 0.0002
        # where the truth puts a vehicle, the recorded frame differs from the empty road
        rows = [r for r in _truth(out / view / "truth.csv") if r["frame"] == "0" and r["kind"] == "vehicle"
                and float(r["visible"]) == 1.0]
        assert rows
        for r in rows:
            x1, y1, x2, y2 = (int(round(float(r[k]))) for k in ("x1", "y1", "x2", "y2"))
            diff = np.abs(first[y1:y2 + 1, x1:x2 + 1].astype(int) - background[y1:y2 + 1, x1:x2 + 1].astype(int))
            assert (diff.max(axis=2) > 40).mean() > 0.2


def _bench_cli(*args, sigint=None):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    # a process group of its own, as a shell gives a command: a terminal's Ctrl-C goes to the whole group; SIGINT
    # as a terminal leaves it (default) or as a script running the bench in the background does (ignored)
    return subprocess.Popen([str(Path(sys.executable).with_name("signalwise")), "vision", "bench", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, sigint or signal.SIG_DFL))


def test_the_bench_grades_the_clip_and_says_why_a_target_with_too_few_events_is_missed(clip, tmp_path):
    out, _ = clip
    proc = _bench_cli("--render", str(out), "--out", str(tmp_path / "b"), "--loop-duration", "0")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode in (0, 1), stderr  # 1: some target missed, as on a clip this short
    bench = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert bench["status"] == "complete" and set(bench["views"]) == {"topdown", "oblique"}
    few = [t for t in bench["targets"] if "events)" in t["name"] and not t["met"]]
    assert few and all(t["note"].startswith("too few events to grade") for t in few)
    assert "(too few events to grade" in stdout


@pytest.mark.parametrize("stop", ["sigterm", "ctrl-c", "sigterm, started with SIGINT ignored"])
def test_a_stopped_bench_leaves_the_pipeline_s_files_whole_and_says_it_is_incomplete(clip, tmp_path, stop):
    """subprocess.run killed the pipeline a moment after the bench was stopped: CSV rows cut short, no
    summary.json. Whatever stops the bench (SIGTERM to it alone, a terminal's Ctrl-C to its whole group), the
    pipeline gets one Ctrl-C from the bench and finishes its files."""
    import os
    import signal
    import time

    out, _ = clip
    bench_out = tmp_path / "b"
    proc = _bench_cli("--render", str(out), "--out", str(bench_out), "--loop-duration", "0",
                      sigint=signal.SIG_IGN if "ignored" in stop else None)
    deadline = time.monotonic() + 120
    while not list(bench_out.glob("pipeline/*/detections.csv")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    if stop.startswith("sigterm"):
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    code, reason = (143, "terminated (SIGTERM)") if stop.startswith("sigterm") else (130, "interrupted")
    assert proc.returncode == code, stderr
    bench = json.loads((bench_out / "bench.json").read_text())
    assert bench["status"] == "incomplete" and bench["reason"] == reason
    pipelines = [d for d in (bench_out / "pipeline").iterdir()]
    assert pipelines
    for d in pipelines:
        summary = json.loads((d / "summary.json").read_text())
        for name in ("detections.csv", "tracks.csv", "crossings.csv", "events.csv"):
            with open(d / name) as fh:
                rows = list(csv.reader(fh))
            assert rows and all(len(r) == len(rows[0]) for r in rows), (name, rows[-1:])
        assert summary["status"] in ("complete", "interrupted", "terminated (SIGTERM)")
