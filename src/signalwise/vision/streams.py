"""One camera stream: a reader thread, a bounded buffer, reconnection with backoff, and its figures.

Sources are anything OpenCV's FFmpeg backend opens: a file, `rtsp://`,
`http(s)://` (MJPEG, HLS, ...). The reader thread decodes frames into a
`FrameBuffer` (drop-oldest for live streams); the consumer calls `read()`
(every frame, in order: offline) or `read_latest()` (the newest, skipping
what it could not keep up with: live).

- A stream that cannot be opened, or stops delivering, is reopened after a
  delay that doubles from `backoff_initial_s` up to `backoff_max_s` (with a
  little jitter so many cameras do not retry in step). After `max_attempts`
  failed openings in a row (None: never give up) its status is `failed`.
  A local file that is there but cannot be opened, or gives no frame, the
  first time fails at once: it is no video, and trying again will not make
  it one (a file that is missing is waited for, and one that played and then
  vanished is reopened as a stream is).
  Nothing is raised: the status and `last_error` say what happened.
- `last_error` is what is wrong now: set while reconnecting or failed,
  cleared when the stream opens again. The error it held then stays
  readable as `previous_error`, with `previous_error_at` (`time.time()` it
  was last seen): an outage that is over is history, not a fault.
- A file ends (`ended`) at its last frame, or starts over with `loop=True`.
  With `pace=True` a file is read at its own frame rate, like a camera.
- Frame times: a file's own clock (frame index / fps, continuing across
  loops); a live stream's seconds since the reader started.

Figures (`stats()`): status, frames read, delivered and dropped, decode FPS
over the last 5 s, latency from decode to consumer (p50, ms), reconnects,
attempts, last error (now) and previous error (an outage that is over).

`probe_video` opens a source and decodes its first frame: the check
`vision run` and `POST /api/v1/streams` make before they start anything.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .framebuffer import FrameBuffer

#: `idle`: made and not started yet (a reader is started at once; the API shows a stream never started `stopped`,
#: and one whose start failed `failed`, with why in its `error`)
STATUSES = ("idle", "connecting", "streaming", "reconnecting", "ended", "failed", "stopped")
FPS_WINDOW_S = 5.0


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray
    index: int  # frames decoded by this reader so far, from 0
    time_s: float  # the stream's clock (see the module's docstring)
    decoded_at: float  # time.monotonic() when it was decoded


@dataclass(frozen=True)
class StreamStats:
    name: str
    source: str
    status: str
    frames_read: int
    frames_delivered: int
    frames_dropped: int
    drop_share: float
    fps: float
    latency_ms_p50: float | None
    reconnects: int
    attempts: int
    source_fps: float | None
    last_error: str | None  # what is wrong now (None while streaming)
    streaming_since: float | None  # time.time() of the last successful opening
    previous_error: str | None = None  # the error of an outage that is over
    previous_error_at: float | None = None  # time.time() it was last seen


now_mono = time.monotonic


def is_url(source: str) -> bool:
    return "://" in source


def shown(source: str) -> str:
    """The source with a URL's secrets masked (`rtsp://admin:***@host/...`, `?token=***`: `core.redaction`):
    camera URLs carry their credentials, and statuses, errors and summaries are read by people and keys that must
    not learn them."""
    if not is_url(source):
        return source
    from ..core.redaction import shown_url

    return shown_url(source)


def quiet_opencv() -> None:
    """FFmpeg and OpenCV print every failed connection to stderr; our status and `last_error` say it once."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg's backend starts
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _open(source: str, open_timeout_s: float, read_timeout_s: float):
    import cv2

    quiet_opencv()
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)


class VideoOpenError(ValueError):
    """A video that cannot be used: what is wrong, without the source (the caller names it as its user gave it)."""


@dataclass(frozen=True)
class VideoProbe:
    width_px: int
    height_px: int
    fps: float | None  # as the container states it, when believable
    frame_count: int | None  # a file's, as its container states it; None for a live stream


def probe_video(source: str, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0) -> VideoProbe:
    """Open `source` (a file or a stream URL) and decode its first frame, else VideoOpenError saying why."""
    live = is_url(source)
    if not live:
        try:
            there = os.path.isfile(source)
        except (OSError, ValueError):  # a NUL byte in the name
            there = False
        if not there:
            raise VideoOpenError("a directory, not a video file" if os.path.isdir(source) else "no such file")
    cap = _open(source, open_timeout_s, read_timeout_s)
    try:
        if not cap.isOpened():
            raise VideoOpenError("OpenCV's FFmpeg backend cannot open it" + (
                "" if live else " (not a video file it can decode)"))
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoOpenError("no frame could be decoded")
        import cv2

        count = None if live else int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = container_fps(cap, source)
    finally:
        cap.release()
    h, w = frame.shape[:2]
    return VideoProbe(int(w), int(h), fps, count if count and count > 0 else None)


#: files of a raw elementary stream (concatenated JPEGs, an H.264/H.265 bitstream): no container, so no frame
#: rate, and FFmpeg reports its guess of 25 frames/s as if it were the file's. Taken as the file's, a 5 frame/s
#: clip ran five times fast and its vehicles were judged speeding at 255 km/h, with evidence images
RAW_STREAM_SUFFIXES = frozenset({".mjpeg", ".mjpg", ".h264", ".264", ".h265", ".265", ".hevc"})


#: how a raw elementary stream begins, whatever the file is called (exported recordings come as .bin, .dat, or
#: no extension): a JPEG's start-of-image marker (concatenated JPEGs, MJPEG) or an Annex B start code (H.264,
#: H.265). A container begins otherwise (MP4/MOV `....ftyp`, Matroska 1A 45 DF A3, AVI `RIFF`, MPEG-TS 0x47)
RAW_STREAM_MAGIC = (b"\xff\xd8\xff", b"\x00\x00\x00\x01", b"\x00\x00\x01")


def is_raw_stream(path: str) -> bool:
    """Whether the file is a raw elementary stream by its first bytes (`RAW_STREAM_MAGIC`): no container, no frame
    rate (FFmpeg's 25 frames/s is a guess)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip") or head.startswith(b"\x00\x00\x01\xba"):
        return False  # an MP4/MOV whose first box has a 64-bit size; an MPEG program stream (timestamps)
    return head.startswith(RAW_STREAM_MAGIC)


def container_fps(cap, source: str | None = None) -> float | None:
    """The frame rate the container states, when it is believable; None for a raw stream file (`source`), whose
    rate is FFmpeg's guess."""
    import cv2

    if source is not None and not is_url(source) and (os.path.splitext(source)[1].lower() in RAW_STREAM_SUFFIXES
                                                      or is_raw_stream(source)):
        return None
    fps = cap.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and math.isfinite(fps) and 0.5 <= fps <= 1000 else None


class StreamReader:
    def __init__(self, source: str, *, name: str | None = None, buffer_size: int = 8, drop_oldest: bool | None = None,
                 fps: float | None = None, pace: bool = False, loop: bool = False, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 30.0, max_attempts: int | None = None, open_timeout_s: float = 10.0,
                 read_timeout_s: float = 10.0):
        self.source = str(source)
        self.shown = shown(self.source)  # what statuses and errors say: no password
        self.name = name or self.shown
        self.live = is_url(self.source)
        self.buffer = FrameBuffer(buffer_size, self.live if drop_oldest is None else drop_oldest)
        self.fps_override = fps
        self.pace, self.loop = pace, loop
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.max_attempts = max_attempts
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s
        self.status = "idle"
        self.last_error: str | None = None
        self.previous_error: str | None = None
        self.previous_error_at: float | None = None
        self._error_at: float | None = None  # time.time() last_error was last set
        self._file_clock_s = 0.0  # a file's clock after its last frame, when it vanished
        self.frames_read = 0
        self.frames_delivered = 0
        self.reconnects = 0
        self.attempts = 0
        self.source_fps: float | None = None
        self.streaming_since: float | None = None
        self._decode_times: deque[float] = deque()
        self._since: float | None = None  # monotonic time the current run of streaming began
        self._latency: deque[float] = deque(maxlen=200)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- control -------------------------------------------------------------------------------------
    def start(self) -> StreamReader:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop = threading.Event()
        self.buffer.reopen()
        self.status = "connecting"
        self._thread = threading.Thread(target=self._run, name=f"signalwise-stream-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self.buffer.close()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.status not in ("ended", "failed"):
            self.status = "stopped"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def read(self, timeout_s: float | None = 1.0) -> Frame | None:
        """The next frame (oldest in the buffer), or None after `timeout_s` or once the stream is over."""
        frame = self.buffer.get(timeout_s)
        if frame is not None:
            self.frames_delivered += 1
            self._latency.append(time.monotonic() - frame.decoded_at)
        return frame

    def read_latest(self, timeout_s: float | None = 1.0) -> Frame | None:
        """The newest frame, the older ones still buffered dropped (and counted): what a live consumer that
        cannot keep up wants. None after `timeout_s` or once the stream is over."""
        frame = self.buffer.get_latest(timeout_s)
        if frame is not None:
            self.frames_delivered += 1
            self._latency.append(time.monotonic() - frame.decoded_at)
        return frame

    def __iter__(self):
        """Frames until the stream ends, fails or is stopped."""
        return self._frames(self.read)

    def newest_frames(self):
        """As iterating, but the newest frame each time, the skipped counted as drops: how a live consumer
        that cannot keep up takes them."""
        return self._frames(self.read_latest)

    def _frames(self, take):
        while True:
            frame = take(0.5)
            if frame is not None:
                yield frame
            elif not self.running and not len(self.buffer):
                return

    # -- the reader thread -------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.backoff_initial_s
        failures = 0
        t_offset = 0.0  # a file's clock continues: after a loop, and after it vanished and came back
        started = time.monotonic()
        first = True
        try:
            while not self._stop.is_set():
                if not first:
                    self.status = "reconnecting"
                    wait = backoff * (1 + 0.1 * random.random())
                    if self._stop.wait(wait):
                        break
                    backoff = min(self.backoff_max_s, backoff * 2)
                first = False
                self.attempts += 1
                cap = _open(self.source, self.open_timeout_s, self.read_timeout_s)
                if not cap.isOpened():
                    cap.release()
                    failures += 1
                    there = self.live or os.path.exists(self.source)
                    if not there:
                        self._error(f"cannot open {self.shown} (no such file)")
                    elif not self.live and self.streaming_since is None:
                        self._error(f"cannot open {self.shown}: not a video file OpenCV's FFmpeg backend can decode")
                        self.status = "failed"  # a file that is no video stays one: no endless reopening
                        return
                    else:
                        self._error(f"cannot open {self.shown}")
                    if self.max_attempts is not None and failures >= self.max_attempts:
                        self.status = "failed"
                        self._error(f"{self.last_error}; gave up after {failures} attempts")
                        return
                    continue
                if self.streaming_since is not None:
                    self.reconnects += 1
                self._recovered()
                failures = 0
                backoff = self.backoff_initial_s
                self.status = "streaming"
                self.streaming_since = time.time()
                if self._since is None or now_mono() - self._since > FPS_WINDOW_S:
                    self._since = now_mono()
                fps = self.fps_override or container_fps(cap, self.source)
                self.source_fps = fps
                read_before = self.frames_read
                ended = self._pump(cap, fps, t_offset, started)
                cap.release()
                if ended is None:
                    break  # stopped
                if ended >= 0 and self.frames_read == read_before and (read_before == 0 or self.loop):
                    # a file that gives no frame: no video (or an empty one); starting it over would spin
                    self._error(f"{self.shown}: no frame could be decoded")
                    self.status = "failed" if read_before == 0 else "ended"
                    return
                if ended < 0 and not self.live:
                    t_offset = self._file_clock_s  # reopened, its frames come after those before the loss
                if ended >= 0:  # a file reached its end
                    t_offset = ended
                    if not self.loop:
                        self.status = "ended"
                        return
                    first = True  # start over at once
                    continue
                # a live stream (or a file that vanished) stopped delivering: reconnect
        finally:
            self.buffer.close()
            if self._stop.is_set() and self.status not in ("ended", "failed"):
                self.status = "stopped"

    def _pump(self, cap, fps: float | None, t_offset: float, started: float) -> float | None:
        """Read until the stream stops: the file's clock at its end (>= 0), -1 for a lost stream, None if stopped."""
        n = 0
        wall0 = time.monotonic()
        t_file = t_offset
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                if self.live or not os.path.exists(self.source):
                    self._error(f"{self.shown}: stream stopped delivering frames")
                    self._file_clock_s = t_file
                    return -1.0
                return t_file if n else t_offset
            now = time.monotonic()
            if self.live:
                t = now - started
            else:
                t = t_offset + (n / fps if fps else now - wall0)
                t_file = t + (1.0 / fps if fps else 0.0)
                if self.pace and fps:
                    delay = wall0 + n / fps - now
                    if delay > 0 and self._stop.wait(delay):
                        return None
            n += 1
            frame = Frame(image, self.frames_read, t, time.monotonic())
            self.frames_read += 1
            with self._lock:
                self._decode_times.append(frame.decoded_at)
                while self._decode_times and self._decode_times[0] < frame.decoded_at - FPS_WINDOW_S:
                    self._decode_times.popleft()
            if not self.buffer.drop_oldest:
                self.buffer.put(frame, self._stop)
            else:
                self.buffer.put(frame)
        return None

    def _error(self, text: str) -> None:
        self.last_error = text
        self._error_at = time.time()

    def _recovered(self) -> None:
        """Opened again: the outage is over; its error becomes the previous one."""
        if self.last_error is not None:
            self.previous_error, self.previous_error_at = self.last_error, self._error_at
            self.last_error = None

    # -- figures ------------------------------------------------------------------------------------
    def fps(self) -> float:
        """Frames decoded per second over the last 5 s of streaming (0 when none came)."""
        now = time.monotonic()
        with self._lock:
            n = sum(1 for t in self._decode_times if t >= now - FPS_WINDOW_S)
        window = min(FPS_WINDOW_S, now - self._since) if self._since is not None else 0.0
        return round(n / window, 2) if window >= 0.5 else 0.0

    def stats(self) -> StreamStats:
        lat = sorted(self._latency)
        p50 = round(1000 * lat[len(lat) // 2], 2) if lat else None
        read = self.frames_read
        dropped = self.buffer.dropped
        return StreamStats(self.name, self.shown, self.status, read, self.frames_delivered, dropped,
                           round(dropped / read, 4) if read else 0.0, self.fps(), p50, self.reconnects,
                           self.attempts, self.source_fps, self.last_error, self.streaming_since,
                           self.previous_error, self.previous_error_at)
