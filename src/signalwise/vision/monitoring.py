"""Figures of the camera streams and their pipelines, for the profiler, alert rules and people.

Per stream: decode FPS and drop share (the reader's), pipeline FPS and time
per frame (p50 / p95 over the last 200 frames), and whether the stream is
down. `flat()` turns them into the dotted names alert rules read
(`vision_stream_down.<id>`, `vision_pipeline_fps.<id>`, ...).
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

FPS_WINDOW_S = 5.0


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
            out[f"vision_stream_down.{sid}"] = 0.0
            continue
        out[f"vision_stream_down.{sid}"] = float(s["status"] in DOWN_STATUSES)
        out[f"vision_stream_fps.{sid}"] = float(s["stream"]["fps"])
        out[f"vision_drop_share.{sid}"] = float(s["stream"]["drop_share"])
        if s.get("pipeline") is not None:
            out[f"vision_pipeline_fps.{sid}"] = float(s["pipeline"]["fps"])
            p95 = s["pipeline"]["ms_per_frame"]["p95"]
            if p95 is not None:
                out[f"vision_frame_ms_p95.{sid}"] = float(p95)
    return out
