"""Evidence images: the frame of a violation, annotated, written as JPEG by a thread of its own.

Encoding a JPEG takes milliseconds; the pipeline must not wait for it. Jobs
wait in a bounded queue: offline (`block=True`) a full queue makes the
pipeline wait, so no evidence is lost; live (`block=False`) the job is dropped
and counted, so a slow disk never stalls the cameras.

`then(callback)` runs a callback on the writer's thread once every image
queued before it is written (or has failed): a live stream hands a violation
to the store then, so the store hashes an image that is on disk, never one
still being encoded, without the camera's thread waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("signalwise.vision.evidence")

YELLOW, WHITE, BLACK = (0, 220, 255), (255, 255, 255), (0, 0, 0)


@dataclass(frozen=True)
class EvidenceJob:
    path: Path
    image: np.ndarray  # the frame, BGR, not annotated
    box_px: tuple[float, float, float, float]
    trail_px: tuple[tuple[float, float], ...]
    stop_line_px: tuple[tuple[float, float], tuple[float, float]] | None
    caption: tuple[str, ...]


def annotate(job: EvidenceJob) -> np.ndarray:
    """The frame with the vehicle's box, its path, the stop line and a caption."""
    img = job.image.copy()
    if job.stop_line_px is not None:
        (x0, y0), (x1, y1) = job.stop_line_px
        cv2.line(img, (round(x0), round(y0)), (round(x1), round(y1)), YELLOW, 2)
    if len(job.trail_px) > 1:
        pts = np.round(np.asarray(job.trail_px)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, YELLOW, 1)
    x1, y1, x2, y2 = (round(v) for v in job.box_px)
    # white on black: one of the two stands out on any vehicle (a red box vanished on a red car)
    cv2.rectangle(img, (x1, y1), (x2, y2), BLACK, BOX_OUTLINE_PX)
    cv2.rectangle(img, (x1, y1), (x2, y2), WHITE, BOX_LINE_PX)
    scale = max(0.4, img.shape[1] / 1600)
    y = round(22 * scale / 0.5)
    for line in job.caption:
        draw_outlined_text(img, line, (8, y), scale)
        y += round(20 * scale / 0.5)
    return img


def draw_outlined_text(img: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """White text with a black outline, readable on any background. The text is drawn once, into a mask, and the
    outline is that mask grown by a pixel: two `putText` calls at thickness 3 and 1 do not overlap under OpenCV 5,
    whose glyph advance grows with the thickness (the black and white lines drift apart along the line)."""
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.putText(mask, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1, cv2.LINE_AA)
    outline = cv2.dilate((mask > 0).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=OUTLINE_PX)
    img[outline > 0] = BLACK
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    img[:] = (alpha * np.array(WHITE, np.float32) + (1 - alpha) * img).astype(np.uint8)


#: the caption's black outline around its white text, pixels
OUTLINE_PX = 2
#: the vehicle's box: a white line this thick inside a black one this thick
BOX_LINE_PX, BOX_OUTLINE_PX = 2, 6


class EvidenceWriter:
    """`submit(job)` queues an image; a daemon thread annotates, encodes and writes it."""

    def __init__(self, root: str | Path, *, max_queue: int = 64, block: bool = True, quality: int = 90):
        self.root = Path(root)
        self.block = block
        self.quality = quality
        self.written = self.dropped = self.failed = 0
        self.busy_s = 0.0
        self.last_error: str | None = None
        self._q: queue.Queue[EvidenceJob | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._queued = self._done = 0  # jobs queued, and of those handled (written or failed)
        self._waiting: list[tuple[int, Callable[[], None]]] = []  # (jobs to be handled first, callback)
        self._thread = threading.Thread(target=self._run, name="signalwise-vision-evidence", daemon=True)
        self._thread.start()

    def submit(self, job: EvidenceJob) -> bool:
        """Queue the job; False when it was dropped (live mode, queue full)."""
        with self._lock:
            self._queued += 1
        try:
            if self.block:
                self._q.put(job)
            else:
                self._q.put_nowait(job)
            return True
        except queue.Full:
            with self._lock:
                self._queued -= 1
            self.dropped += 1
            return False

    def then(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once every job queued so far is handled: from the writer's thread, or at once when
        none waits (or the writer has stopped). Never blocks the caller."""
        with self._lock:
            if self._done < self._queued and self._thread.is_alive():
                self._waiting.append((self._queued, callback))
                return
        _call(callback)

    def _handled(self) -> None:
        """One more job handled: the callbacks waiting for it and those before it run."""
        with self._lock:
            self._done += 1
            ready = [cb for n, cb in self._waiting if n <= self._done]
            self._waiting = [(n, cb) for n, cb in self._waiting if n > self._done]
        for cb in ready:
            _call(cb)

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                self._q.task_done()
                return
            t0 = time.perf_counter()
            try:
                ok, buf = cv2.imencode(".jpg", annotate(job), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    raise OSError("JPEG encoding failed")
                job.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = job.path.with_suffix(".part")
                tmp.write_bytes(buf.tobytes())
                tmp.replace(job.path)  # a reader never sees half an image
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - a failed image must not stop the writer
                self.failed += 1
                self.last_error = str(exc)
                log.warning("evidence %s not written: %s", job.path, exc)
            finally:
                self.busy_s += time.perf_counter() - t0
                self._q.task_done()
                self._handled()

    def flush(self) -> None:
        """Wait until every queued image is written."""
        self._q.join()

    def close(self) -> None:
        self.flush()
        self._q.put(None)
        self._thread.join(5.0)
        with self._lock:  # nothing is left to wait for
            ready, self._waiting = [cb for _n, cb in self._waiting], []
        for cb in ready:
            _call(cb)

    def stats(self) -> dict:
        rate = self.written / self.busy_s if self.busy_s > 0 else None
        return {"written": self.written, "dropped": self.dropped, "failed": self.failed,
                "queued": self._q.qsize(), "images_per_s_of_writer_time": round(rate, 1) if rate else None,
                "last_error": self.last_error}


def _call(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # noqa: BLE001 - a caller's callback must not stop the writer
        log.exception("evidence callback failed")
