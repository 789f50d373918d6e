"""Synthetic scenes with exact truth for the vision tests (`signalwise.vision.synthetic`)."""

from __future__ import annotations

import csv


def small_scene(**kw):
    """A 320x240 view at 4 px/m, 10 frames/s: quick to render and to process."""
    from signalwise.vision.synthetic import Scene

    args = {"width_px": 320, "height_px": 240, "px_per_m": 4.0, "fps": 10.0, "seed": 7, "arrivals_per_s": 0.15}
    args.update(kw)
    return Scene(**args)


def small_camera(scene, **extra):
    from signalwise.vision.camera import camera_from_dict

    cfg = scene.camera_config()
    cfg.update(extra)
    return camera_from_dict(cfg)


def small_pipeline(scene, camera=None, **kw):
    from signalwise.vision.blobs import BlobDetector
    from signalwise.vision.pipeline import Pipeline

    camera = camera or small_camera(scene)
    return Pipeline(camera, BlobDetector(min_area_px=40, close_px=5), **kw)


def write_signals(path, states, offset_s=0.0, device="B1"):
    """A `time_s,device_id,state` file with one row per change, and the last state again at the last time given:
    a log exported up to the clip's end (after its last row a log covers only its longest gap between rows)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time_s", "device_id", "state"])
        prev, last_t = None, None
        for t, st in states:
            if st != prev:
                w.writerow([f"{t + offset_s:.3f}", device, st])
                prev, last_t = st, t
        if states and states[-1][0] != last_t:
            w.writerow([f"{states[-1][0] + offset_s:.3f}", device, states[-1][1]])


def write_violations_clip(folder, offset_s, tmp_path_factory=None):
    """The clip the violation-record tests store: 20 s with 3 red-light runners and a speeder, its camera file
    (`cam.yaml`) and its signal log on a clock `offset_s` ahead (`signals.csv`), in `folder`. Given the session's
    `tmp_path_factory`, the video and camera file are copies of ones rendered once for the session
    (`_session_violations_clip`): the same bytes, as the scene is seeded."""
    import shutil

    if tmp_path_factory is not None:
        shared, states = _session_violations_clip(tmp_path_factory)
        for name in ("clip.mp4", "cam.yaml"):
            shutil.copyfile(shared / name, folder / name)
        write_signals(folder / "signals.csv", states, offset_s=offset_s)
        return folder
    states = _render_violations_clip(folder)
    write_signals(folder / "signals.csv", states, offset_s=offset_s)
    return folder


def _render_violations_clip(folder) -> list:
    """`clip.mp4` and `cam.yaml` of `write_violations_clip` in `folder`; returns the signal states of its frames."""
    import yaml

    from signalwise.vision.synthetic import write_video

    scene = small_scene(seed=3, red_runner_share=0.4, speeder_share=0.3, green_s=8.0, yellow_s=2.0, all_red_s=1.0)
    truth = write_video(folder / "clip.mp4", scene, 20.0)
    (folder / "cam.yaml").write_text(yaml.safe_dump(scene.camera_config()))
    return truth["states"]


def _session_violations_clip(tmp_path_factory):
    """`_render_violations_clip` once per test session, in a folder beside the test workers' own (pytest-xdist's
    workers share their parent folder): the first worker to take the lock renders it, the others wait and read it.
    Returns the folder and the signal states."""
    import fcntl
    import json
    import os

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / "violations-clip"
    with open(root / "violations-clip.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "states.json").is_file():
            folder.mkdir(exist_ok=True)
            states = _render_violations_clip(folder)
            (folder / "states.json").write_text(json.dumps(states))  # written last: the clip is whole
    return folder, json.loads((folder / "states.json").read_text())


def write_suspect_cameras(folder) -> None:
    """Beside `folder`'s `cam.yaml`, two calibrations a run's own checks flag: `feet.yaml`, its road points in feet
    (every distance and speed 3.28 times: the traffic's 85th-percentile speed check, after the run), and
    `moved.yaml`, one surveyed point 5 m off (the residual check, before the run)."""
    import copy

    import yaml

    camera = yaml.safe_load((folder / "cam.yaml").read_text())
    feet = copy.deepcopy(camera)
    for pair in feet["calibration"]:
        pair["m"] = [v * 3.28084 for v in pair["m"]]
    (folder / "feet.yaml").write_text(yaml.safe_dump(feet))
    moved = copy.deepcopy(camera)
    x, y = moved["calibration"][5]["m"]
    moved["calibration"][5]["m"] = [x + 5.0, y]
    (folder / "moved.yaml").write_text(yaml.safe_dump(moved))
