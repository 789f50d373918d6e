"""Per-stage timing of the live loop: p50 / p95 / p99 / max over a sliding window.

Stages are observe, decide, shield, actuate, record, publish, plus the
field's step (the simulator round trip) and the pacing lateness of each
tick. Recording is an append to a bounded deque (cheap enough for every
tick); percentiles are computed only when someone reads them.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

STAGES = ("observe", "decide", "shield", "actuate", "field_step", "record", "publish", "tick", "lateness")


class Profiler:
    def __init__(self, window: int = 2000):
        self.window = window
        self._samples: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._lock = threading.Lock()  # readers copy under it; the loop's append is atomic already

    def add(self, stage: str, seconds: float) -> None:
        q = self._samples.get(stage)
        if q is None:
            with self._lock:
                q = self._samples.setdefault(stage, deque(maxlen=self.window))
        q.append(seconds)

    def recent(self, stage: str) -> float | None:
        """The stage's last sample, seconds (None before the first)."""
        q = self._samples.get(stage)
        return q[-1] if q else None

    def figures(self) -> dict[str, dict[str, float | int]]:
        """Milliseconds per stage over the window: count, p50, p95, p99, max."""
        with self._lock:
            copies = {stage: list(q) for stage, q in self._samples.items()}
        out = {}
        for stage, values in copies.items():
            if not values:
                out[stage] = {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
                continue
            ms = np.asarray(values) * 1000.0
            p50, p95, p99 = np.percentile(ms, [50, 95, 99])
            out[stage] = {"count": len(values), "p50_ms": round(float(p50), 4), "p95_ms": round(float(p95), 4),
                          "p99_ms": round(float(p99), 4), "max_ms": round(float(ms.max()), 4)}
        return out
