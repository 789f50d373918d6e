"""Figures of the camera streams and their pipelines, for the profiler, alert rules and people.

Per stream: decode FPS and drop share (the reader's), pipeline FPS and time
per frame (p50 / p95 over the last 200 frames), whether the stream is
down, and whether its picture is any good (`ImageCheck`: blank or frozen).
`flat()` turns them into the dotted names alert rules read
(`vision_stream_down.<id>`, `vision_stream_blank.<id>`, `vision_pipeline_fps.<id>`, ...).
"""

from __future__ import annotations

import time
from collections import deque

import cv2
import numpy as np

FPS_WINDOW_S = 5.0

#: a stream whose frames have all been blank (or all the same) for this many seconds of its frames is reported:
#: long enough that a scene that is briefly dark (a lorry in front of the lens) or a dropped-and-repeated
#: frame is not, short enough to be the same hold as `vision_stream_down`
IMAGE_BAD_AFTER_S = 10.0
#: below this standard deviation of grey levels (0-255) over the frame's sample a frame is blank. A road scene
#: spreads over tens of levels (the synthetic scene: 15.6, its flat grey road included); a black, grey or green
#: encoder output is 0-1 after JPEG, and a covered lens shows only sensor noise, 1-3 levels
BLANK_STD = 4.0
#: the sample the check reads: every 8th pixel of a 640x480 frame, by nearest neighbour (no averaging, so a
#: real camera's sensor noise is kept, and no frame of one is ever equal to the one before); 5 us a frame,
#: where an area-averaged resize takes 0.5 ms
SAMPLE_SIZE = (80, 60)

IMAGE_STATES = ("ok", "blank", "frozen")


class ImageCheck:
    """Is a stream's picture blank (lens covered, IR failed at night, a blank encoder) or frozen (a hung encoder
    sending the same frame)? `add` each decoded frame; `state` is None before the first, else one of
    `IMAGE_STATES`, "blank" first when both hold (a black frame repeated).

    Frozen means equal to the previous frame byte for byte, every frame for `IMAGE_BAD_AFTER_S`: a real
    camera's frames always differ a little (sensor noise, compression), stopped traffic or not; only a repeated
    decoded frame is equal. The samples are compared first, the whole frames (0.14 ms) only when those are
    equal. A noiseless rendering of a scene where nothing moves would count as frozen; `synthetic.Scene` adds
    noise (its default `noise` 4 grey levels), so its scenes do not.

    Times are the stream's own seconds (its frames'), so a file read faster than real time is judged on its
    own clock. One thread adds; any thread reads `state` and `bad_s`."""

    def __init__(self, after_s: float | None = None, blank_std: float | None = None):
        self.after_s = IMAGE_BAD_AFTER_S if after_s is None else after_s
        self.blank_std = BLANK_STD if blank_std is None else blank_std
        self._prev: np.ndarray | None = None  # the previous frame (a reference: the reader makes a new array each)
        self._prev_sample: np.ndarray | None = None
        self._blank_since: float | None = None
        self._frozen_since: float | None = None
        self._last_s: float | None = None  # the previous frame's time
        self.state: str | None = None
        self.bad_s = 0.0  # for how long the state has held (blank or frozen; 0 while ok)

    def add(self, image: np.ndarray, time_s: float) -> str:
        sample = cv2.resize(image, SAMPLE_SIZE, interpolation=cv2.INTER_NEAREST)
        grey = cv2.cvtColor(sample, cv2.COLOR_BGR2GRAY) if sample.ndim == 3 else sample
        blank = float(cv2.meanStdDev(grey)[1][0, 0]) < self.blank_std
        prev, prev_sample = self._prev, self._prev_sample
        same = (prev is not None and prev.shape == image.shape and np.array_equal(prev_sample, sample)
                and cv2.norm(prev, image, cv2.NORM_INF) == 0)
        self._prev, self._prev_sample = image, sample
        prev_s, self._last_s = self._last_s, time_s
        if prev_s is not None and time_s < prev_s:  # a clock that went back: start again
            self._blank_since = self._frozen_since = None
        self._blank_since = (self._blank_since if self._blank_since is not None else time_s) if blank else None
        if same:
            # held since the frame before: the first of the equal ones
            self._frozen_since = self._frozen_since if self._frozen_since is not None else prev_s
        else:
            self._frozen_since = None
        blank_s = time_s - self._blank_since if self._blank_since is not None else 0.0
        frozen_s = time_s - self._frozen_since if self._frozen_since is not None else 0.0
        if blank and blank_s >= self.after_s:
            self.state, self.bad_s = "blank", blank_s
        elif same and frozen_s >= self.after_s:
            self.state, self.bad_s = "frozen", frozen_s
        else:
            self.state, self.bad_s = "ok", 0.0
        return self.state

    def reason(self) -> str | None:
        """What a live run is told while the picture is bad (None while it is fine)."""
        if self.state == "blank":
            return f"image blank for {self.bad_s:.0f} s (no picture: lens covered, no light, or a blank encoder)"
        if self.state == "frozen":
            return f"image frozen for {self.bad_s:.0f} s (the same frame repeated: a hung encoder)"
        return None


class FrameMeter:
    """Processed frames: rate over the last 5 s and time per frame."""

    def __init__(self, keep: int = 200):
        self._done: deque[float] = deque()
        self._ms: deque[float] = deque(maxlen=keep)
        self.frames = 0
        self._since = time.monotonic()

    def add(self, seconds: float) -> None:
        now = time.monotonic()
        self.frames += 1
        self._done.append(now)
        self._ms.append(seconds * 1000)
        while self._done and self._done[0] < now - FPS_WINDOW_S:
            self._done.popleft()

    def fps(self) -> float:
        now = time.monotonic()
        n = sum(1 for t in self._done if t >= now - FPS_WINDOW_S)
        window = min(FPS_WINDOW_S, now - self._since)
        return round(n / window, 2) if window >= 0.5 else 0.0

    def ms(self) -> dict:
        if not self._ms:
            return {"p50": None, "p95": None}
        p50, p95 = np.percentile(np.asarray(self._ms), [50, 95])
        return {"p50": round(float(p50), 2), "p95": round(float(p95), 2)}


DOWN_STATUSES = ("reconnecting", "failed", "connecting")


def flat(streams: list[dict]) -> dict[str, float]:
    """Alert-rule figures from `StreamManager.list()` entries."""
    out: dict[str, float] = {}
    for s in streams:
        sid = s["id"]
        if not s.get("wanted_running"):
            # a stream an operator stopped is not down: said, so that an alert raised before the stop clears
            out.update(not_down(sid))
            continue
        down = s["status"] in DOWN_STATUSES
        out[f"vision_stream_down.{sid}"] = float(down)
        # the picture is judged while frames come; a stream that drops with a bad picture still has none (until a
        # good frame comes), so its blank or frozen figure holds through the outage: the camera is never reported
        # well between the picture going bad and `vision_stream_down`'s 10 s hold
        image = s.get("image") if s["status"] == "streaming" else s.get("image_last") if down else None
        out[f"vision_stream_blank.{sid}"] = float(image == "blank")
        out[f"vision_stream_frozen.{sid}"] = float(image == "frozen")
        out[f"vision_stream_fps.{sid}"] = float(s["stream"]["fps"])
        out[f"vision_drop_share.{sid}"] = float(s["stream"]["drop_share"])
        if s.get("pipeline") is not None:
            out[f"vision_pipeline_fps.{sid}"] = float(s["pipeline"]["fps"])
            p95 = s["pipeline"]["ms_per_frame"]["p95"]
            if p95 is not None:
                out[f"vision_frame_ms_p95.{sid}"] = float(p95)
    return out


def not_down(stream_id: str) -> dict[str, float]:
    """The figures of a stream stopped or deleted: none of its alerts holds, so those raised clear."""
    return {f"vision_stream_{what}.{stream_id}": 0.0 for what in ("down", "blank", "frozen")}
