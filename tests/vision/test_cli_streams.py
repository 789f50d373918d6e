"""`signalwise vision run` end to end on a synthetic video, its refusals of bad input, and stream
reconnection against real local sources (an MJPEG server on 127.0.0.1 stopped and restarted; a file that
disappears and comes back)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from support.cli import in_a_process, signalwise
from vision_scenes import small_scene, write_signals

HEADERS = {
    "tracks.csv": "frame,time_s,track_id,x_px,y_px,x_m,y_m,speed_mps",
    "crossings.csv": "time_s,track_id,stop_line,approach,signal_state,joined",
    "violations.csv": "time_s,track_id,kind,approach,speed_mps,evidence_path,speed_uncertainty_mps,span_start_s,"
                      "span_end_s,span_m",
    "counts.csv": "interval_start_s,approach,count",
    "detections.csv": "frame,time_s,x1,y1,x2,y2,score",
}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """40 s of the synthetic intersection (400x300, 10 frames/s), its camera file and signal states."""
    from signalwise.vision.synthetic import write_video

    d = tmp_path_factory.mktemp("video")
    scene = small_scene(seed=5, width_px=400, height_px=300, px_per_m=5.0, red_runner_share=0.3)
    truth = write_video(d / "scene.mp4", scene, 40)
    cam = scene.camera_config()
    cam.update({"anchor": "front", "extra_key_from_another_tool": {"ok": True}})
    (d / "cam.yaml").write_text(yaml.safe_dump(cam, sort_keys=False))
    write_signals(d / "signal_states.csv", truth["states"], offset_s=300.0)
    return d, truth


def _run(*args):
    """`signalwise vision run ARGS` in this process (its work runs on threads)."""
    return signalwise("vision", "run", *map(str, args))


def _run_in_a_process(*args):
    """The same in a process of its own: what OpenCV's C++ side prints reaches this stderr too."""
    return in_a_process("vision", "run", *map(str, args))


@pytest.mark.slow
def test_vision_run_writes_every_file_with_its_header(video, tmp_path):
    d, truth = video
    out = tmp_path / "out"
    p = _run("--video", d / "scene.mp4", "--camera", d / "cam.yaml", "--signals", d / "signal_states.csv",
             "--signals-offset", 300, "--interval", 20, "--out", out)
    assert p.returncode == 0, p.stderr
    for name, header in HEADERS.items():
        assert (out / name).read_text().splitlines()[0] == header, name
    assert (out / "events.csv").read_text().startswith("TimeStamp,DeviceId,EventId,Parameter")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["frames"] == 400
    crossings = list(csv.DictReader(open(out / "crossings.csv")))
    assert 0.8 * len(truth["crossings"]) <= len(crossings) <= len(truth["crossings"])
    assert {c["signal_state"] for c in crossings} <= {"G", "y", "r"}
    assert {c["joined"] for c in crossings} <= {"true", "false"}
    counts = list(csv.DictReader(open(out / "counts.csv")))
    assert {r["interval_start_s"] for r in counts} == {"0.0", "20.0"}
    assert sum(int(r["count"]) for r in counts) == len(crossings)
    violations = list(csv.DictReader(open(out / "violations.csv")))
    for v in violations:
        assert v["kind"] in ("red_light", "speeding") and (out / v["evidence_path"]).is_file()
    reds = [v for v in violations if v["kind"] == "red_light"]
    true_reds = [c for c in truth["crossings"] if c.state == "r"]
    assert len(reds) <= len(true_reds) and len(reds) >= 0.8 * len(true_reds)
    assert "tracks" in p.stdout and "red-light" in p.stdout


def _camera_with(d: Path, tmp_path: Path, **change) -> Path:
    cam = yaml.safe_load((d / "cam.yaml").read_text())
    for key, value in change.items():
        if value is None:
            cam.pop(key, None)
        else:
            cam[key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cam))
    return path


@pytest.mark.parametrize("change,needle", [
    ({"calibration": [{"px": [0, 0], "m": [0, 0]}, {"px": [10, 0], "m": [1, 0]}, {"px": [0, 10], "m": [0, 1]}]},
     "calibration: 3 point pair(s); a homography needs at least 4"),
    ({"calibration": [{"px": [0, 0], "m": [0, 0]}, {"px": [10, 0], "m": [1, 0]}, {"px": [20, 0], "m": [2, 0]},
                      {"px": [30, 0], "m": [3, 0]}]}, "degenerate"),
    ({"zones": [{"name": "far", "approach": "north", "px": [[10, 10], [900, 10], [900, 50]]}]},
     "zones[0] (far): point [900, 10] is outside the 400x300 frame"),
    ({"stop_lines": [{"name": "n", "approach": "north", "px": [[0, 0], [10, 0]], "links": [7]}]},
     "stop_lines[0] (n): links [7] are not in B1's state string of 4 links"),
    ({"device_id": "Z9"}, "no signal states for device 'Z9'"),
    ({"camera_id": None}, "camera_id: Field required"),
    # degenerate shapes: each would detect nothing, silently
    ({"zones": [{"name": "flat", "approach": "north", "px": [[10, 10], [20, 20], [30, 30]]}]},
     "zones[0] (flat): the polygon has no area (its points are on one line)"),
    ({"zones": [{"name": "bow", "approach": "north", "px": [[10, 10], [100, 100], [100, 10], [10, 100]]}]},
     "zones[0] (bow): its edges cross; list the corners in order around the zone"),
    ({"stop_lines": [{"name": "dot", "approach": "north", "px": [[50, 50], [50, 50]], "links": [0]}]},
     "stop_lines[0] (dot): its two ends are the same point"),
    # wrong units: the survey in degrees of latitude/longitude (about 60 m across) or in millimetres
    ({"calibration": [{"px": [50, 275], "m": [40.7, -74.0]}, {"px": [350, 275], "m": [40.7006, -74.0]},
                      {"px": [350, 25], "m": [40.7006, -73.9995]}, {"px": [50, 25], "m": [40.7, -73.9995]}]},
     "calibration: the m points span 0.0006, not road metres"),
    ({"calibration": [{"px": [50, 275], "m": [-30000, -25000]}, {"px": [350, 275], "m": [30000, -25000]},
                      {"px": [350, 25], "m": [30000, 25000]}, {"px": [50, 25], "m": [-30000, 25000]}]},
     "calibration: the m points span 60000, not road metres"),
])
def test_bad_camera_files_get_one_error_line_exit_2_and_nothing_written(video, tmp_path, change, needle):
    d, _ = video
    out = tmp_path / "never"
    # the frame is checked once FFmpeg has opened the video: its stderr must hold the one line too
    run = _run_in_a_process if "frame" in needle else _run
    p = run("--video", d / "scene.mp4", "--camera", _camera_with(d, tmp_path, **change), "--signals",
            d / "signal_states.csv", "--out", out)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.startswith("error: ") and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr and not out.exists()


def test_an_approach_the_intersection_lacks_is_named(video, tmp_path):
    d, _ = video
    model = tmp_path / "signal_model.json"
    model.write_text(json.dumps([{"id": "B1", "n_links": 4, "approaches": {"a": "north", "b": "south",
                                                                        "c": "east"}}]))
    p = _run("--video", d / "scene.mp4", "--camera", d / "cam.yaml", "--signal-model", model, "--out", tmp_path / "o")
    assert p.returncode == 2 and "approach 'west' is not an approach of B1 (its approaches: east, north, south)" \
        in p.stderr, p.stderr


@pytest.mark.parametrize("model,needle", [
    ([{"id": "B1", "n_links": 4, "approaches": ["north", "south"]}], "B1's entry needs approaches as {lane: approach}"),
    ([{"id": "B1", "n_links": "4", "approaches": {"a": "north"}}], "and n_links as a whole number"),
    ({"id": "B1", "n_links": 4}, "not a run's signal_model.json (a list of intersections)"),
])
def test_a_malformed_signal_model_is_one_error_line(video, tmp_path, model, needle):
    d, _ = video
    path = tmp_path / "signal_model.json"
    path.write_text(json.dumps(model))
    p = _run("--video", d / "scene.mp4", "--camera", d / "cam.yaml", "--signal-model", path, "--out", tmp_path / "o")
    assert p.returncode == 2 and p.stderr.startswith(f"error: --signal-model {path}: ") and needle in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,needle", [
    (["--video", "/nonexistent.mp4"], "--video /nonexistent.mp4: no such file"),
    (["--interval", "0"], "--interval must be at least 1 s, not 0"),
    # a row per closed interval: 1e-9 s wrote no row and ran for ever, 1e-4 s 800,000 rows for 20 s of video
    (["--interval", "1e-9"], "--interval must be at least 1 s"),
    (["--signals", "signal_states.csv", "--signals-offset", "nan"], "--signals-offset must be a finite number"),
    (["--signals", "signal_states.csv", "--signals-offset", "inf"], "--signals-offset must be a finite number"),
    (["--detector", "onnx"], "needs a model file"),
    (["--detector", "magic"], "unknown detector 'magic'"),
])
def test_bad_options_are_refused(video, tmp_path, args, needle):
    d, _ = video
    base = {"--video": d / "scene.mp4", "--camera": d / "cam.yaml", "--out": tmp_path / "o"}
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = d / v if v == "signal_states.csv" else v
    p = _run(*[x for kv in base.items() for x in kv])
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "o").exists()


def test_a_video_that_is_not_a_video(tmp_path, video):
    d, _ = video
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    p = _run("--video", junk, "--camera", d / "cam.yaml", "--out", tmp_path / "o")
    assert p.returncode == 2 and ("cannot open it" in p.stderr or "no frame" in p.stderr), p.stderr


@pytest.mark.slow
def test_a_truncated_video_says_it_ended_before_the_frames_its_container_states(video, tmp_path):
    from signalwise.vision.synthetic import write_video

    d, _ = video
    whole = tmp_path / "whole.avi"
    write_video(whole, small_scene(seed=5, width_px=400, height_px=300, px_per_m=5.0), 10, fourcc="MJPG")
    data = whole.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[:len(data) // 2])  # a copy that stopped half way
    p = _run("--video", tmp_path / "cut.avi", "--camera", d / "cam.yaml", "--out", tmp_path / "o")
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert 0 < summary["frames"] < 90
    status = f"the video ended after {summary['frames']} of the 100 frames its container states"
    assert summary["status"].startswith(status) and f"status: {status}" in p.stderr
    p = _run("--video", whole, "--camera", d / "cam.yaml", "--out", tmp_path / "o2")
    assert json.loads((tmp_path / "o2" / "summary.json").read_text())["status"] == "complete"


# -- streams ------------------------------------------------------------------------------------------------
def _frames(n=10):
    return [f for f, _t, _truth, _s in small_scene(seed=1).frames(n / 10)]


def _wait(cond, timeout_s=20.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_a_stream_reconnects_when_the_camera_goes_dark_and_comes_back():
    from signalwise.vision.mjpeg_server import MjpegServer, free_port
    from signalwise.vision.streams import StreamReader

    port = free_port()
    server = MjpegServer(_frames(), fps=20, port=port).start()
    reader = StreamReader(server.url, backoff_initial_s=0.2, backoff_max_s=1.0, open_timeout_s=3, read_timeout_s=2,
                          buffer_size=4).start()
    try:
        assert _wait(lambda: reader.stats().frames_read >= 20), reader.stats()
        assert reader.status == "streaming"
        server.stop()
        assert _wait(lambda: reader.status == "reconnecting"), reader.stats()
        before = reader.stats()
        assert before.last_error and before.attempts >= 1
        # it keeps trying, with backoff (0.2 s, then doubled up to 1 s: the next attempt well within 1.5 s)
        assert _wait(lambda: reader.stats().attempts > before.attempts, 1.5), reader.stats()
        server = MjpegServer(_frames(), fps=20, port=port).start()
        assert _wait(lambda: reader.status == "streaming" and reader.stats().frames_read > before.frames_read + 10)
        s = reader.stats()
        assert s.reconnects == 1 and s.frames_dropped > 0 and s.drop_share > 0  # nobody read: oldest dropped
        assert len(reader.buffer) <= 4
    finally:
        reader.stop()
        server.stop()
    assert reader.status == "stopped"


def test_a_file_that_disappears_and_reappears(tmp_path):
    from signalwise.vision.streams import StreamReader
    from signalwise.vision.synthetic import write_video

    src = tmp_path / "cam.mp4"
    write_video(src, small_scene(seed=2), 1.0)
    keep = tmp_path / "keep.mp4"
    shutil.copy(src, keep)
    reader = StreamReader(str(src), loop=True, pace=True, drop_oldest=True, backoff_initial_s=0.2,
                          backoff_max_s=0.5).start()
    try:
        assert _wait(lambda: reader.stats().frames_read >= 5)
        src.unlink()
        assert _wait(lambda: reader.status == "reconnecting"), reader.stats()
        assert _wait(lambda: "no such file" in (reader.stats().last_error or "")), reader.stats()
        shutil.copy(keep, src)
        n = reader.stats().frames_read
        assert _wait(lambda: reader.status == "streaming" and reader.stats().frames_read > n + 5), reader.stats()
    finally:
        reader.stop()


def test_a_stream_that_never_opens_fails_with_a_status_not_a_crash():
    from signalwise.vision.mjpeg_server import free_port
    from signalwise.vision.streams import StreamReader

    reader = StreamReader(f"http://127.0.0.1:{free_port()}/stream.mjpg", max_attempts=3, backoff_initial_s=0.1,
                          open_timeout_s=1).start()
    assert _wait(lambda: reader.status == "failed", 30), reader.stats()
    assert "gave up after 3 attempts" in reader.stats().last_error
    assert reader.read(0.1) is None


def test_a_camera_urls_password_is_never_shown(video, tmp_path):
    """Camera URLs carry credentials (rtsp://admin:pass@host/...): a stream's status, its errors, `vision run`'s
    error line and summary show the user, never the password."""
    from signalwise.vision.manager import StreamManager, StreamSpec
    from signalwise.vision.mjpeg_server import MjpegServer, free_port

    d, _ = video
    server = MjpegServer(_frames(), fps=20).start()
    url = f"http://admin:s3cret@127.0.0.1:{server.port}/stream.mjpg"
    manager = StreamManager()
    try:
        manager.add(StreamSpec("c1", url))
        assert _wait(lambda: manager.get("c1")["stream"]["frames_read"] >= 5), manager.get("c1")
        assert manager.get("c1")["url"] == f"http://admin:***@127.0.0.1:{server.port}/stream.mjpg"
        server.stop()
        assert _wait(lambda: manager.get("c1")["error"]), manager.get("c1")
        status = json.dumps(manager.get("c1"))
        assert "s3cret" not in status and "admin:***@127.0.0.1" in manager.get("c1")["error"]
    finally:
        manager.close()
        server.stop()
    down = f"http://admin:s3cret@127.0.0.1:{free_port()}/stream.mjpg"
    p = _run_in_a_process("--video", down, "--camera", d / "cam.yaml", "--out", tmp_path / "o")
    assert p.returncode == 2 and "--video http://admin:***@127.0.0.1:" in p.stderr and "s3cret" not in p.stderr
    frames = [f for f, *_ in small_scene(seed=5, width_px=400, height_px=300, px_per_m=5.0).frames(1.0)]
    server = MjpegServer(frames, fps=20).start()  # the camera file's 400x300 view
    try:
        p = _run_in_a_process("--video", f"http://admin:s3cret@127.0.0.1:{server.port}/stream.mjpg",
                              "--camera", d / "cam.yaml", "--out", tmp_path / "o", "--max-frames", 5)
    finally:
        server.stop()
    assert p.returncode == 0, p.stderr
    assert "s3cret" not in (tmp_path / "o" / "summary.json").read_text()


@pytest.mark.slow
def test_vision_run_stores_its_violations_with_db(video, tmp_path, db_url):
    """`--db URL`: every violation of violations.csv is a row of the store, stamped --start + its time, with its
    evidence image's absolute path; the counts behind the trends agree. SQLite, and PostgreSQL when reachable."""
    import datetime as dt

    from sqlalchemy import select

    from signalwise.store import get_engine
    from signalwise.store.tables import ViolationRow
    from signalwise.store.violations import summary

    d, _ = video
    out = tmp_path / "out"
    p = _run("--video", d / "scene.mp4", "--camera", d / "cam.yaml", "--signals", d / "signal_states.csv",
             "--signals-offset", 300, "--out", out, "--db", db_url, "--start", "2026-05-04T07:30:00+02:00",
             "--max-frames", 100)  # its first 10 s hold a red-light runner
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(open(out / "violations.csv")))
    assert rows and f"{len(rows)} violation(s) stored in" in p.stdout
    engine = get_engine(db_url)
    with engine.connect() as conn:
        stored = [r._asdict() for r in conn.execute(select(ViolationRow.__table__))]
    start = dt.datetime(2026, 5, 4, 5, 30, tzinfo=dt.UTC)
    got = sorted((round((v["occurred_at"] - start).total_seconds(), 2), v["kind"], v["evidence_path"])
                 for v in stored)
    assert got == sorted((round(float(r["time_s"]), 2), r["kind"], str((out / r["evidence_path"]).resolve()))
                         for r in rows)
    assert all(Path(v["evidence_path"]).is_file() for v in stored)
    assert {v["camera_id"] for v in stored} == {"cam-1"} and {v["device_id"] for v in stored} == {"B1"}
    assert summary(engine)["total"] == len(rows)


def test_a_db_that_cannot_be_opened_is_an_error_and_nothing_is_written(video, tmp_path):
    d, _ = video
    out = tmp_path / "never"
    p = _run("--video", d / "scene.mp4", "--camera", d / "cam.yaml", "--out", out, "--db",
             "postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    # a database that cannot be reached: the command could not do its work (1), as every `--db` (exitcodes)
    assert p.returncode == 1 and p.stderr.startswith("error: --db postgresql+psycopg://nobody:***@127.0.0.1:1/none: "
                                                     "cannot open it"), p.stderr
    assert "secret" not in p.stderr and not out.exists()
    p = _run("--video", d / "scene.mp4", "--camera", d / "cam.yaml", "--out", out, "--db", "plain.db")
    assert p.returncode == 2 and "is not a database URL" in p.stderr and not out.exists(), p.stderr  # bad input
    os.environ["SIGNALWISE_MAX_PAGE_SIZE"] = "many"  # a bad setting read for --db default: bad input too
    try:
        p = _run("--video", d / "scene.mp4", "--camera", d / "cam.yaml", "--out", out, "--db", "default")
    finally:
        del os.environ["SIGNALWISE_MAX_PAGE_SIZE"]
    assert p.returncode == 2 and p.stderr.startswith("error: SIGNALWISE_MAX_PAGE_SIZE") and not out.exists(), p.stderr
    p = _run("--video", d / "scene.mp4", "--camera", d / "cam.yaml", "--out", out, "--start", "4 May 2026")
    assert p.returncode == 2 and "--start '4 May 2026': not an ISO 8601 instant" in p.stderr, p.stderr


def test_an_out_directory_that_cannot_be_made_is_one_line_before_any_work(tmp_path):
    """`--out` under a regular file is refused naming the option, as run, compare and atspm refuse it,
    before the inputs are read (here they do not even exist) and with nothing created."""
    (tmp_path / "file").write_text("")
    p = _run("--video", tmp_path / "none.mp4", "--camera", tmp_path / "none.yaml", "--out", tmp_path / "file" / "out")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --out ") and "is not a directory" in lines[0], p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["file"]


def test_sigterm_stops_a_run_as_ctrl_c_does_with_its_files_and_summary(video, tmp_path):
    """A stream has no end: `docker stop`, systemd or `timeout` stop its run with SIGTERM, which used to kill it
    with empty files and no summary. Now it ends as Ctrl-C ends it, and both exit 130."""
    import signal
    import subprocess
    import sys
    import time

    d, _ = video
    out = tmp_path / "o"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("signalwise")), "vision", "run", "--video",
                             str(d / "scene.mp4"), "--camera", str(d / "cam.yaml"), "--fps", "10", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "tracks.csv").is_file() or (out / "tracks.csv").stat().st_size < 200:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "terminated (SIGTERM)" and 0 < summary["frames"] < 400
    assert "status: terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    for name in ("tracks.csv", "crossings.csv", "counts.csv", "violations.csv"):
        assert (out / name).read_text().splitlines()[0]  # every file closed with its header at least


def test_a_second_run_into_the_same_out_is_refused_and_the_first_is_kept(video, tmp_path):
    """A run into a directory an earlier run wrote left the earlier evidence images beside rows that no longer
    named them."""
    d, _ = video
    out = tmp_path / "o"
    out.mkdir()
    (out / "violations.csv").write_text("an earlier run's\n")
    p = _run("--video", d / "scene.mp4", "--camera", d / "cam.yaml", "--out", out)
    assert p.returncode == 2 and "exists and is not empty: a vision run never overwrites" in p.stderr, p.stderr
    assert (out / "violations.csv").read_text() == "an earlier run's\n"


def test_a_raw_mjpeg_file_has_no_frame_rate_of_its_own_and_is_refused_without_fps(video, tmp_path):
    """Concatenated JPEGs carry no frame rate; FFmpeg reports its guess of 25 frames/s, which taken as the file's
    ran a 10 frame/s clip 2.5 times fast (a 5 frame/s one five times, and its vehicles were ticketed at 255 km/h).
    The file is refused without --fps, as the docs say, and runs at the rate --fps gives."""
    import cv2

    d, _ = video
    raw = tmp_path / "scene.mjpeg"
    cap = cv2.VideoCapture(str(d / "scene.mp4"))
    with open(raw, "wb") as out:
        for _ in range(50):  # 5 s at the scene's 10 frames/s
            ok, frame = cap.read()
            assert ok
            out.write(cv2.imencode(".jpg", frame)[1].tobytes())
    cap.release()
    refused = _run("--video", raw, "--camera", d / "cam.yaml", "--out", tmp_path / "o")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "a raw stream with no container (concatenated JPEGs, an H.264/H.265 bitstream): nothing in it states its " \
           "frame rate; give it with --fps" in refused.stderr
    assert not (tmp_path / "o").exists()
    ran = _run("--video", raw, "--camera", d / "cam.yaml", "--fps", 10, "--out", tmp_path / "o2")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert summary["fps_source"] == 10.0


def test_a_camera_key_close_to_one_signalwise_reads_is_named_with_the_key_it_likely_meant(video, tmp_path):
    """Extra keys are kept for other tools, so a typo is no error; but `speed_limit_mp` left speeding unjudged and
    `stoplines` left the stop lines out, with nothing said. A note names each, and a key far from ours is quiet."""
    d, _ = video
    cam = yaml.safe_load((d / "cam.yaml").read_text())
    cam["speed_limit_mp"] = cam.pop("speed_limit_mps", 13.9)
    cam["zones"][0]["chanel"] = 3
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(cam, sort_keys=False))
    # the notes come from reading the camera file, before the first frame: 20 frames are run, not the whole clip
    p = _run("--video", d / "scene.mp4", "--camera", tmp_path / "typo.yaml", "--out", tmp_path / "o",
             "--max-frames", 20)
    assert p.returncode == 0, p.stderr
    notes = [line for line in p.stderr.splitlines() if line.startswith("note: camera file key ")]
    assert any("speed_limit_mp is not one signalwise reads (did you mean speed_limit_mps?)" in n for n in notes), notes
    assert any("zones[0].chanel is not one signalwise reads (did you mean channel?)" in n for n in notes), notes
    assert not any("extra_key_from_another_tool" in n for n in notes)  # another tool's key: no note


@pytest.mark.slow
def test_vision_run_on_a_stream_stores_each_violation_while_the_stream_goes(video, tmp_path):
    """A stream may never end: its violations are stored as they are called, not held for an end that may not
    come (a file's are stored when its run ends, after the calibration's checks over the whole run)."""
    import signal
    import subprocess
    import sys

    from sqlalchemy import func, select

    from signalwise.store import get_engine
    from signalwise.store.tables import ViolationRow
    from signalwise.vision.mjpeg_server import MjpegServer

    d, _ = video
    scene = small_scene(seed=5, width_px=400, height_px=300, px_per_m=5.0, red_runner_share=0.3)
    frames = [f for f, *_ in scene.frames(10.0)]  # its first 10 s hold a red-light runner; the server loops them
    db_url = f"sqlite:///{tmp_path / 'v.db'}"
    server = MjpegServer(frames, fps=10).start()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("signalwise")), "vision", "run", "--video",
                             f"http://127.0.0.1:{server.port}/stream.mjpg", "--camera", str(d / "cam.yaml"),
                             "--signals", str(d / "signal_states.csv"), "--signals-offset", "300",
                             "--out", str(tmp_path / "out"), "--db", db_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stored, deadline = 0, time.monotonic() + 90
    try:
        engine = get_engine(db_url)
        while not stored and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                with engine.connect() as conn:
                    stored = conn.execute(select(func.count()).select_from(ViolationRow.__table__)).scalar_one()
            except Exception:  # noqa: BLE001 - the run has not made its tables yet
                stored = 0
        running = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        server.stop()
    assert stored >= 1 and running, err[-3000:]
