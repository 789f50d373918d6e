"""Camera streams and the vision pipeline against the issue's throughput targets, on this machine.

    .venv/bin/python bench/vision_throughput.py [--streams 4] [--decode-s 60] [--pipeline-s 60] [--fps 25]
                                                [--speed] [--tickets]

1. decode: `--streams` MJPEG servers on 127.0.0.1 (640x480 synthetic video at `--fps`, served by a child
   process so the figures below are the readers' and pipelines' alone), one `StreamReader`
   each (the server's path: FFmpeg backend, reader thread, drop-oldest buffer), every frame taken by a
   consumer thread; per stream: decoded frames/s over the run and the share dropped (goal: >= 15 frames/s,
   < 10 % drops, for 10 minutes: pass --decode-s 600).
2. pipeline: the same streams, each with a worker running the whole pipeline (blob detector, ByteTrack,
   homography, zones, stop lines, violations) as `StreamManager` runs it; per stream: frames processed/s
   and time per frame p50/p95 (goal: >= 5 frames/s per stream with 4 streams on 2 cores, < 200 ms per frame);
   the process's resident memory at the end (goal: < 500 MB) and CPU.
3. `--speed`: speed RMSE on the synthetic scene (top-down, 25 frames/s) for the speed fits, against truth.
4. `--tickets`: speeding calls of `signalwise vision run` on a straight road through a junction with vehicles at
   exact constant speeds (`vision/synthetic_road.py`: 800x600, 8 px/m, each speed driven in both directions,
   entering and leaving at the frame's edges), at 5, 10 and 25 frames/s, limit 13.89 + tolerance 2.0 = threshold
   15.89 m/s: false tickets among vehicles just under the threshold (15.5-15.85 m/s), tickets among those over it
   (16.2-20 m/s), and each ticket's speed error against the truth and its stated uncertainty.

Frames a stream does not process in time are dropped: the worker takes the newest, as `StreamManager` does.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import threading
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def frames(n_s: float, fps: float, seed: int):
    from signalwise.vision.synthetic import Scene

    scene = Scene(seed=seed, fps=fps, arrivals_per_s=0.15, red_runner_share=0.1, speeder_share=0.1)
    return scene, [f for f, _t, _truth, _s in scene.frames(n_s)]


class _Remote:
    """A camera served by the child process: its URL, and `stop()` does nothing (the child goes at the end)."""

    def __init__(self, url: str):
        self.url = url

    def stop(self) -> None:
        pass


_CHILD = None


def servers(n: int, fps: float):
    """`n` MJPEG cameras served from a child process (8 s of synthetic video each, looping), so this process's
    memory and CPU are the readers' and pipelines' alone; (scene, server) pairs."""
    import json
    import subprocess
    import sys

    from signalwise.vision.synthetic import Scene

    global _CHILD
    if _CHILD is None:
        _CHILD = subprocess.Popen([sys.executable, __file__, "--serve", str(n), "--fps", str(fps)],
                                  stdout=subprocess.PIPE, text=True)
        _CHILD.urls = json.loads(_CHILD.stdout.readline())
    return [(Scene(seed=k, fps=fps), _Remote(url)) for k, url in enumerate(_CHILD.urls)]


def serve(n: int, fps: float) -> None:
    import json

    from signalwise.vision.mjpeg_server import MjpegServer

    started = []
    for k in range(n):
        _scene, imgs = frames(8.0, fps, seed=k)
        started.append(MjpegServer(imgs, fps=fps).start())
        del imgs
    print(json.dumps([s.url for s in started]), flush=True)
    parent = os.getppid()
    while os.getppid() == parent:  # the benchmark ended (or died): so does its camera
        time.sleep(1.0)


def decode(n: int, seconds: float, fps: float) -> None:
    from signalwise.vision.streams import StreamReader

    srv = servers(n, fps)
    readers = [StreamReader(s.url, buffer_size=8, name=f"s{k}").start() for k, (_sc, s) in enumerate(srv)]
    stop = threading.Event()
    taken = [0] * n

    def consume(k: int) -> None:
        while not stop.is_set():
            if readers[k].read(0.2) is not None:
                taken[k] += 1

    threads = [threading.Thread(target=consume, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    time.sleep(2.0)  # connected and streaming
    base = [r.stats() for r in readers]
    c0, t0 = os.times(), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    c1 = os.times()
    stats = [r.stats() for r in readers]
    stop.set()
    for r in readers:
        r.stop()
    for _sc, s in srv:
        s.stop()
    print(f"decode: {n} MJPEG streams (640x480, {fps:g} frames/s at the source) for {seconds:g} s")
    for k, (a, b) in enumerate(zip(base, stats, strict=True)):
        read = b.frames_read - a.frames_read
        dropped = b.frames_dropped - a.frames_dropped
        print(f"  stream {k}: {read / wall:6.2f} frames/s decoded, {100 * dropped / max(read, 1):5.2f} % dropped, "
              f"reconnects {b.reconnects}, latency p50 {b.latency_ms_p50} ms")
    cpu = (c1.user + c1.system - c0.user - c0.system) / wall * 100
    print(f"  process: CPU {cpu:.0f} % of one core, RSS {rss_mb():.0f} MB")


def pipeline(n: int, seconds: float, fps: float) -> None:
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.pipeline import Pipeline
    from signalwise.vision.streams import StreamReader

    srv = servers(n, fps)
    # buffers as StreamManager's default: the worker takes the newest frame, so a deeper one only holds drops
    readers = [StreamReader(s.url, buffer_size=2, name=f"s{k}").start() for k, (_sc, s) in enumerate(srv)]
    pipes = [Pipeline(camera_from_dict(sc.camera_config())) for sc, _s in srv]
    stop = threading.Event()
    done = [[] for _ in range(n)]

    def work(k: int) -> None:
        while not stop.is_set():
            f = readers[k].read_latest(0.2)  # as StreamManager: the newest frame, older ones dropped
            if f is None:
                continue
            r = pipes[k].process(f.image, f.time_s)
            done[k].append((time.monotonic(), r.timing_s["total"]))

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    time.sleep(5.0)  # warm-up: background models settle
    base = [r.stats() for r in readers]
    marks = [len(d) for d in done]
    c0, t0 = os.times(), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    c1 = os.times()
    stats = [r.stats() for r in readers]
    stop.set()
    for t in threads:
        t.join(5)
    for r in readers:
        r.stop()
    for _sc, s in srv:
        s.stop()
    print(f"pipeline: {n} streams, detection + tracking + zones + violations, for {seconds:g} s "
          f"({os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f})")
    all_ms = []
    for k in range(n):
        got = done[k][marks[k]:]
        ms = [1000 * s for _t, s in got]
        all_ms += ms
        read = stats[k].frames_read - base[k].frames_read
        dropped = stats[k].frames_dropped - base[k].frames_dropped
        p50, p95 = np.percentile(ms, [50, 95]) if ms else (math.nan, math.nan)
        print(f"  stream {k}: {len(got) / wall:6.2f} frames/s processed, {p50:6.1f} ms p50, {p95:6.1f} ms p95 per "
              f"frame; decoded {read / wall:5.1f}/s, {100 * dropped / max(read, 1):5.1f} % dropped by the buffer")
    cpu = (c1.user + c1.system - c0.user - c0.system) / wall * 100
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p50, p95 = np.percentile(all_ms, [50, 95])
    frames_done = sum(len(done[k]) - marks[k] for k in range(n))
    cpu_ms = (c1.user + c1.system - c0.user - c0.system) * 1000 / max(frames_done, 1)
    print(f"  all streams: {p50:.1f} ms p50, {p95:.1f} ms p95 per frame (wall, waiting for a core included); "
          f"{cpu_ms:.1f} ms of CPU per frame; CPU {cpu:.0f} % of one core; RSS {rss_mb():.0f} MB now, "
          f"{peak:.0f} MB peak")
    print(f"  -> {n} streams at 5 frames/s need {n * 5 * cpu_ms / 1000:.2f} cores of CPU time")


def speed() -> None:
    from signalwise.vision.boxes import box_iou
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.pipeline import Pipeline
    from signalwise.vision.speed import SpeedEstimator
    from signalwise.vision.synthetic import Scene

    print("speed RMSE against truth, 45 s of the synthetic top-down scene (25 frames/s, 8 px/m), vehicles matched "
          "by box")
    for fit, window in (("linear", 1.0), ("linear", 1.5), ("quadratic", 1.5), ("quadratic", 2.0)):
        scene = Scene(seed=5, arrivals_per_s=0.12, speeder_share=0.25)
        pipe = Pipeline(camera_from_dict(scene.camera_config()))
        pipe.speeds = SpeedEstimator(window, fit=fit)
        err = []
        for image, t, truth, state in scene.frames(45):
            r = pipe.process(image, t, signal_state=state)
            if not r.tracks or not truth:
                continue
            iou = box_iou(np.array([v.box_px for v in truth]), np.array([tp.box_px for tp in r.tracks]))
            for k, tp in enumerate(r.tracks):
                j = int(iou[:, k].argmax())
                if iou[j, k] >= 0.5 and not math.isnan(tp.speed_mps):
                    err.append(tp.speed_mps - truth[j].speed_mps)
        print(f"  {fit:9s} fit over {window:.1f} s: RMSE {math.sqrt(statistics.fmean(e * e for e in err)):.2f} m/s "
              f"over {len(err)} track-frames")


#: `--tickets`: speeds under the threshold (15.89 m/s) and over it, each driven north and south
UNDER_MPS = (15.5, 15.6, 15.7, 15.75, 15.8, 15.85)
OVER_MPS = (16.2, 16.5, 17.0, 18.0, 20.0)


def tickets() -> None:
    import csv
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import yaml

    from signalwise.vision.synthetic_road import camera_config, match_calls, write_speed_clip

    print("speeding tickets of `signalwise vision run` on vehicles at exact constant speeds (800x600, 8 px/m; "
          "limit 13.89 + tolerance 2.0 = threshold 15.89 m/s)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cam.yaml").write_text(yaml.safe_dump(camera_config(800, 600, 8.0)))
        for fps in (5.0, 10.0, 25.0):
            for label, speeds in (("under", UNDER_MPS), ("over", OVER_MPS)):
                clip = root / f"{label}{fps:g}.mp4"
                vehicles = write_speed_clip(clip, speeds, fps, width_px=800, height_px=600)
                out = root / f"{label}{fps:g}"
                subprocess.run([sys.executable, "-m", "signalwise.cli", "vision", "run", "--video", str(clip),
                                "--camera", str(root / "cam.yaml"), "--out", str(out)], check=True,
                               capture_output=True)
                calls = match_calls(csv.DictReader(open(out / "violations.csv")), vehicles)
                named = {id(v): (row, v) for row, v in calls if v is not None}
                unnamed = sum(v is None for _row, v in calls)
                shown = ", ".join(f"{v:g}" for v in speeds)
                if label == "under":
                    print(f"  {fps:g} frames/s, {len(vehicles)} vehicles at {shown} m/s (under): "
                          f"{len(named)} false ticket(s)" + (f", {unnamed} call(s) naming no vehicle" if unnamed else ""))
                    continue
                errors = [float(row["speed_mps"]) - v.speed_mps for row, v in named.values()]
                within = sum(abs(e) <= float(row["speed_uncertainty_mps"])
                             for e, (row, _v) in zip(errors, named.values(), strict=True))
                unc = [float(row["speed_uncertainty_mps"]) for row, _v in named.values()]
                missed = [f"{v.speed_mps:g} {v.direction}" for v in vehicles if id(v) not in named]
                print(f"  {fps:g} frames/s, {len(vehicles)} vehicles at {shown} m/s (over): {len(named)} ticketed"
                      + (f" (missed: {', '.join(missed)})" if missed else "")
                      + (f", {unnamed} call(s) naming no vehicle" if unnamed else "")
                      + (f"; speed error {min(errors):+.2f} to {max(errors):+.2f} m/s, uncertainty "
                         f"{min(unc):.2f}-{max(unc):.2f} m/s, truth within it for {within} of {len(errors)}"
                         if errors else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--decode-s", type=float, default=60.0)
    ap.add_argument("--pipeline-s", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--speed", action="store_true", help="also the speed-fit comparison")
    ap.add_argument("--tickets", action="store_true", help="also the speeding calls on vehicles at known speeds")
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(a.serve, a.fps)
        return
    if a.decode_s > 0:
        decode(a.streams, a.decode_s, a.fps)
    if a.pipeline_s > 0:
        pipeline(a.streams, a.pipeline_s, a.fps)
    if a.speed:
        speed()
    if a.tickets:
        tickets()
    if _CHILD is not None:
        _CHILD.kill()


if __name__ == "__main__":
    main()
