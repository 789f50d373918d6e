"""What a red-light / speed enforcement pilot found, pinned down on small synthetic clips.

- A calibration the run's own checks flag as wrong (road points in feet: the traffic's 85th-percentile speed over
  twice the limit; a surveyed point off the fit) issues no violation: red light and speeding are not judged, the
  run exits 1 and stores nothing, unless --accept-suspect-calibration; accepted, the violations are written and
  stored, each row marked with the reasons (`judged_with.calibration_suspect`: tests/vision/test_judged_with.py).
- A raw MJPEG file is known by its bytes, whatever its name: without --fps it is refused.
- Evidence captions: the white text lies inside its black outline (two putText calls drift apart under OpenCV 5).
- The run records the camera file and signal log it judged with (SHA-256); --replace with another camera file
  says so; events.csv is stamped from --start.
- The signal log refuses two states at one instant and characters that are no link state, naming the line.
- A red-light call's speed is the mean over the speed window, not one frame's box.
"""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest
import yaml
from sqlalchemy import create_engine, text
from support.cli import signalwise
from vision_scenes import write_suspect_cameras, write_violations_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 s with red-light runners and speeders (`write_violations_clip`), its camera file in feet too."""
    d = write_violations_clip(tmp_path_factory.mktemp("pilot"), 0.0, tmp_path_factory)
    write_suspect_cameras(d)  # feet.yaml and moved.yaml
    return d


def _run(d, out, camera, *args):
    return signalwise("vision", "run", "--video", str(d / "clip.mp4"), "--camera", str(camera), "--signals",
                      str(d / "signals.csv"), "--out", str(out), *map(str, args))


def _stored(db) -> int:
    with create_engine(f"sqlite:///{db}").connect() as conn:
        return conn.execute(text("select count(*) from violations")).scalar_one()


@pytest.mark.slow
def test_road_points_in_feet_issue_no_violation_unless_accepted(clip, tmp_path):
    d = clip
    p = _run(d, tmp_path / "metres", d / "cam.yaml")
    assert p.returncode == 0, p.stderr
    metres = json.loads((tmp_path / "metres" / "summary.json").read_text())
    assert metres["violations"]["red_light"] >= 1 and metres["calibration_suspect"] == []

    db = tmp_path / "v.db"
    p = _run(d, tmp_path / "feet", d / "feet.yaml", "--db", f"sqlite:///{db}", "--start", "2026-05-04T07:30:00+02:00")
    assert p.returncode == 1, p.stdout + p.stderr
    # in feet a metre of road is 3.28 times fewer pixels: the resolution check flags it before the run, the
    # traffic's speeds after it
    assert "error: the calibration is suspect (zone " in p.stderr and "px per road metre" in p.stderr
    assert "; the traffic's 85th-percentile speed" in p.stderr
    assert "--accept-suspect-calibration" in p.stderr and "not stored" in p.stderr
    assert _stored(db) == 0
    summary = json.loads((tmp_path / "feet" / "summary.json").read_text())
    assert set(summary["not_judged"]) == {"red_light", "speeding"}
    assert summary["not_judged"]["red_light"].startswith("the calibration is suspect: ")
    assert sum(summary["violations_withheld"].values()) >= 1 and summary["violations"] == {"red_light": 0,
                                                                                          "speeding": 0}
    assert list(csv.DictReader(open(tmp_path / "feet" / "violations.csv"))) == []
    assert not list((tmp_path / "feet" / "evidence").glob("*.jpg"))  # no image of a call not made
    assert "red light: not judged (the calibration is suspect: " in p.stdout

    p = _run(d, tmp_path / "accepted", d / "feet.yaml", "--accept-suspect-calibration")
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "accepted" / "summary.json").read_text())
    assert summary["suspect_calibration_accepted"] and summary["calibration_suspect"]
    assert list(csv.DictReader(open(tmp_path / "accepted" / "violations.csv")))
    assert "calibration suspect, accepted (--accept-suspect-calibration)" in p.stdout
    # accepted with --db: every violation written is stored (and marked), in
    # test_judged_with.py::test_a_run_stores_what_it_judged_with_and_an_accepted_suspect_calibration_marked


def test_a_surveyed_point_off_the_fit_issues_no_violation(clip, tmp_path):
    d = clip
    db = tmp_path / "v.db"
    p = _run(d, tmp_path / "out", d / "moved.yaml", "--db", f"sqlite:///{db}")
    assert p.returncode == 1 and "error: the calibration is suspect (the 6 surveyed points miss the fit by" in p.stderr
    assert _stored(db) == 0 and list(csv.DictReader(open(tmp_path / "out" / "violations.csv"))) == []
    # accepted with --db: judged, every violation written stored, and marked, in
    # test_judged_with.py::test_a_run_stores_what_it_judged_with_and_an_accepted_suspect_calibration_marked


@pytest.mark.slow
def test_the_run_records_its_camera_file_and_signal_log_and_replace_says_when_the_camera_file_changed(clip, tmp_path):
    d = clip
    db = tmp_path / "v.db"
    p = _run(d, tmp_path / "a", d / "cam.yaml", "--db", f"sqlite:///{db}", "--start", "2026-11-20T08:00:00-05:00")
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    import hashlib

    assert summary["camera_file"]["sha256"] == hashlib.sha256((d / "cam.yaml").read_bytes()).hexdigest()
    assert summary["signals_file"]["sha256"] == hashlib.sha256((d / "signals.csv").read_bytes()).hexdigest()
    assert summary["signalwise_version"]
    n = _stored(db)
    assert n >= 1
    # events.csv on the camera's clock from --start (naive local time of its zone)
    events = (tmp_path / "a" / "events.csv").read_text().splitlines()[1:]
    assert events and all(e.startswith("2026-11-20 08:00:") for e in events), events[:3]
    # the same camera, another file (a comment added): --replace says the earlier rows came from another one
    other = tmp_path / "cam2.yaml"
    other.write_text("# re-surveyed\n" + (d / "cam.yaml").read_text())
    p = _run(d, tmp_path / "b", other, "--db", f"sqlite:///{db}", "--replace")
    assert p.returncode == 0, p.stderr
    assert (f"note: --replace: the violations removed were judged with another camera file, {d / 'cam.yaml'} "
            f"(sha256 {summary['camera_file']['sha256'][:12]}...)") in p.stderr
    assert _stored(db) == n


def test_a_raw_mjpeg_file_is_known_by_its_bytes_not_its_name(tmp_path):
    from vision_scenes import small_scene

    from signalwise.vision.video_run import InputError, check_inputs

    scene = small_scene()
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(scene.camera_config()))
    frame = np.full((scene.height_px, scene.width_px, 3), 90, np.uint8)
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    for name in ("clip.bin", "noext"):
        (tmp_path / name).write_bytes(jpeg * 12)
        with pytest.raises(InputError, match=r"raw stream with no container .*; give it with --fps"):
            check_inputs(str(tmp_path / name), tmp_path / "cam.yaml")
        assert check_inputs(str(tmp_path / name), tmp_path / "cam.yaml", fps=10.0).fps == 10.0


def test_a_caption_s_text_lies_inside_its_outline():
    from signalwise.vision.evidence import EvidenceJob, annotate

    green = (0, 160, 0)  # no blend of the white text and its black outline is this colour
    image = np.zeros((120, 640, 3), np.uint8)
    image[:] = green
    caption = ("cam-main-1st J1 red light track 4 t=20.01 s", "front over wb-line at 20.01 s, signal r")
    out = annotate(EvidenceJob(None, image, (600, 100, 610, 110), (), None, caption))
    region = out[:60, :600].astype(int)
    white = (region.min(axis=2) > 200)
    background = (region == green).all(axis=2)
    assert white.sum() > 300  # the text is there
    # no text pixel touches the untouched background: each is inside the black outline
    touching = cv2.dilate(white.astype(np.uint8), np.ones((3, 3), np.uint8)) & background.astype(np.uint8)
    assert touching.sum() == 0, f"{touching.sum()} text pixels touch the background"


@pytest.mark.parametrize(("rows", "message"), [
    (["0,J1,Gr", "14,J1,yr", "17,J1,rG", "17,J1,GG"], r"sig.csv:5: J1 at 17 s shows 'GG'; line 4 gives it 'rG'"),
    (["0,J1,Gr", "17,J1,XG"], r"sig.csv:3: state 'XG' of J1 has 'X', no SUMO link state"),
])
def test_the_signal_log_refuses_two_states_at_once_and_unknown_letters(tmp_path, rows, message):
    from signalwise.vision.signals import SignalFileError, SignalTimeline

    (tmp_path / "sig.csv").write_text("time_s,device_id,state\n" + "\n".join(rows) + "\n")
    with pytest.raises(SignalFileError, match=message):
        SignalTimeline.from_csv(tmp_path / "sig.csv")


def test_the_same_state_twice_at_one_instant_is_taken():
    import io  # noqa: F401 - a file with a repeated row is a change-only log written twice, not a contradiction

    from signalwise.vision.signals import SignalTimeline

    rows = [(0.0, "J1", "Gr"), (17.0, "J1", "rG"), (17.0, "J1", "rG")]
    assert SignalTimeline(rows).state_at("J1", 18) == "rG"


def test_a_red_light_call_s_speed_is_the_window_mean_not_one_frame_s_box():
    """12 m/s at 15 frames/s; the newest frame's box covers half the car (its point 1 m short)."""
    from signalwise.vision.speed import SpeedEstimator

    est = SpeedEstimator()
    t = [k / 15 for k in range(30)]
    for k, tk in enumerate(t):
        x = 12.0 * tk - (1.0 if k == len(t) - 1 else 0.0)
        est.add(1, tk, x, 0.0)
    assert est.mean_speed(1) == pytest.approx(12.0, abs=0.6)
    assert math.isnan(SpeedEstimator().mean_speed(2))


def test_video_directory_db_folder_and_exports(tmp_path):
    from signalwise.vision import MjpegServer, Scene, write_video  # noqa: F401 - the docs' table imports them so

    (tmp_path / "cam.yaml").write_text("x: 1\n")
    p = signalwise("vision", "run", "--video", str(tmp_path), "--camera", str(tmp_path / "cam.yaml"), "--out",
                   str(tmp_path / "out"))
    assert p.returncode == 2
    from signalwise.vision.streams import VideoOpenError, probe_video

    with pytest.raises(VideoOpenError, match="a directory, not a video file"):
        probe_video(str(tmp_path))
