"""Camera streams: `POST/GET /api/v1/streams`, `GET/DELETE /api/v1/streams/{id}`, `POST .../{id}/start|stop`,
and their alerts: `GET /api/v1/streams/alerts`, `POST /api/v1/streams/alerts/{id}/ack`.

Reads need `read`, changes `operate` (`api/auth.py`). The manager
(`vision.manager.StreamManager`) is made on first use: OpenCV is loaded only
by a server that runs cameras. Its results go out on the live WebSocket
(topic `vision`), its violations into the store (`ViolationWriter`), its
timings into the profiler (the attached live run's), and its figures through
the camera alert rules (stream down, low FPS, slow frames): raised alerts go
out on topic `alert` and into the store's `alerts` table (see `manager`).
Prometheus reads the same figures at `/metrics` (`routers/monitoring.py`).

What a request may name is narrower than what `vision run` may: files only inside the server's cameras
directory (`cameras_dir`; `api/server_files.py`) and URLs only to allowed hosts (`camera_hosts`;
`api/camera_urls.py`), each refused before anything is opened or connected to.

`POST` checks a stream as `vision run` checks its input (the camera file; a video file opened and its first frame
decoded, the zones inside it): what `vision run` refuses is a 422 with the same reason, not a stream that fails
later. One stream per `camera_id` (409): two would mix their violations and counts under one camera.

Streams live in this process's memory (`app.state.vision`): a server of several worker processes
(`signalwise serve --workers N`, `uvicorn --workers N`, WEB_CONCURRENCY=N: `api/workers.py`) would keep each stream in
the one worker
that took its POST, unknown to the others, and could run one camera twice. So every stream route of such a server
answers 503 saying so (`one_process`), but the list, empty with a `note`; a restart forgets every stream (a client
posts them again).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from .. import camera_urls
from ..errors import refusal
from ..times import utc_times
from ..workers import Workers, worker_processes


def several_workers(request: Request) -> Workers | None:
    """How many worker processes serve this app, and how that is known, when they are more than one
    (`workers.worker_processes`), outside a live run; else None."""
    workers = worker_processes()
    return workers if workers.count > 1 and getattr(request.app.state, "live", None) is None else None


def _told(workers: Workers, with_serve: bool) -> str:
    """How the server says it runs several workers: `signalwise serve --workers 2; WEB_CONCURRENCY=2`, or
    uvicorn's own `uvicorn --workers 2`."""
    n = workers.count
    if workers.source == "WEB_CONCURRENCY":
        return f"signalwise serve --workers {n}; WEB_CONCURRENCY={n}" if with_serve else f"WEB_CONCURRENCY={n}"
    return f"{workers.source} {n}"


def one_process(request: Request) -> None:
    """503 on a server of several worker processes: a stream lives in the memory of the worker that took its POST,
    so the others would not know it (GET and DELETE answering 404 or 200 by the worker) and could run its camera a
    second time. Every stream route says the same, so a client never sees a stream one call and not the next.
    `signalwise live` serves from its one process whatever WEB_CONCURRENCY or its parent process says. The list (`GET /api/v1/streams`)
    answers such a server's callers an empty list with a `note` instead (`several_workers`): none of its workers
    runs a stream, and a dashboard listing streams on every replica shows none rather than an error."""
    workers = several_workers(request)
    if workers is not None and request.scope.get("endpoint") is not list_streams:
        raise HTTPException(503, f"camera streams run in one process, and this server runs {workers.count} worker "
                                 f"processes ({_told(workers, True)}): a "
                                 "stream added to one would be unknown to the others; start a separate single-worker "
                                 "`signalwise serve` (--workers 1) for camera streams, or run this one with "
                                 "--workers 1")


router = APIRouter(prefix="/api/v1/streams", tags=["cameras"], dependencies=[Depends(one_process)],
                   responses={503: {"description": "this server runs several worker processes: camera streams run "
                                                   "on a single-worker server (the list answers 200 with a note)"}})

StreamId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
_lock = threading.Lock()
_adding = threading.Lock()
SCHEMES = tuple(f"{scheme}://" for scheme in camera_urls.SCHEMES)
CAMERAS_DIR = "SIGNALWISE_CAMERAS_DIR"


class StreamIn(BaseModel):
    """A camera stream to run."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": "cam-1", "url": "rtsp://192.0.2.10/stream1", "camera_file": "/etc/signalwise/cam-1.yaml"}]})

    id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                           description="the stream's id (default: the camera's camera_id, else s1, s2, ...)")
    url: str = Field(min_length=1, max_length=2048,
                     description="rtsp://, rtsps://, http(s):// (MJPEG, HLS, ...) to a host the server allows "
                                 "(SIGNALWISE_CAMERA_HOSTS; loopback and link-local only when listed), or a video "
                                 "file in the server's cameras directory (SIGNALWISE_CAMERAS_DIR)")
    camera: dict | None = Field(None, description="the camera file's contents (as in docs/vision.md); without a "
                                                  "camera the stream is only decoded and measured")
    camera_file: str | None = Field(None, max_length=1024, description="a camera file in the server's cameras "
                                                                       "directory, instead of `camera`")
    detector: Literal["blobs", "moving-blobs", "onnx"] = "blobs"
    model: str | None = Field(None, max_length=1024, description="a YOLOv8-format ONNX model in the server's "
                                                                 "cameras directory (detector onnx)")
    buffer_size: int = Field(2, ge=1, le=256, description="frames decoded ahead of the worker; it takes the newest "
                                                          "and the others are dropped, so more only costs memory")
    fps: float | None = Field(None, gt=0, le=1000, allow_inf_nan=False,
                              description="frame rate, when the source does not state one")
    loop: bool = Field(False, description="a file starts over at its end")
    start: bool = Field(True, description="start reading at once")
    accept_suspect_calibration: bool = Field(
        False, description="run a camera whose calibration `vision run` would call suspect (its surveyed points "
                           "miss the fit by over 0.5 m RMS, or a zone is seen at under 2.75 px per road metre); "
                           "refused (422) otherwise. Accepted, the reasons are in the stream's `warnings` and every "
                           "violation it stores is marked with them (judged_with.calibration_suspect)")


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: not a file either
        return False


def _no_video_file(url: str, path: Path) -> str:
    """Why a file in the cameras directory is refused, naming the path the server looked at: a file that is not
    there is most likely a typo (a camera that is away is a stream URL, reconnected to when it comes; a file is not
    waited for)."""
    try:
        what = "a directory, not a video file" if path.is_dir() else "no such file on the server"
    except (OSError, ValueError):  # a name too long for the file system
        return f"body.url: {url!r}: not a file name the server can open"
    where = "" if Path(url).is_absolute() else f" (looked for at {path}, in the cameras directory)"
    return (f"body.url: {url}: {what}{where}; a camera stream is a URL starting with {', '.join(SCHEMES)}")


def _named_files(body: StreamIn, request: Request) -> StreamIn:
    """`body` with each file it names as its path in the cameras directory, before anything is opened; a URL
    checked for where it leads before anything connects. One answer for every path outside (`server_files`)."""
    from signalwise.vision.streams import is_url

    from ..server_files import inside, outside

    settings = request.app.state.settings
    directory = settings.cameras_dir
    if is_url(body.url):
        why = camera_urls.refusal(body.url, settings.camera_hosts)
        if why:
            raise refusal(why)
    update = {}
    for field, what, instead in (
            ("url", "video file", f"a camera stream is a URL starting with {', '.join(SCHEMES)}"),
            ("camera_file", "camera file", "give the camera file's contents as `camera`"),
            ("model", "detector model", "the blobs and moving-blobs detectors need none")):
        name = getattr(body, field)
        if name is None or (field == "url" and is_url(name)):
            continue
        path = inside(name, directory)
        if path is None:
            raise refusal(outside(f"body.{field}", what, directory, CAMERAS_DIR, instead))
        update[field] = str(path)
    camera = body.camera
    if isinstance(camera, dict) and isinstance(camera.get("background_image"), str) and camera["background_image"]:
        # "" is none (the detector reads none); not a string: the camera's own 422
        update["camera"] = {**camera, "background_image": background_file(
            "body.camera.background_image", camera["background_image"], directory)}
    return body.model_copy(update=update) if update else body


#: what a camera does without a background image, for the answer refusing one
NO_BACKGROUND = "leave background_image out: the empty road is then learnt from the stream's first frames"


def background_file(field: str, name: str, directory: Path | None) -> str:
    """A camera's `background_image` as its path in the cameras directory, confined as `camera_file` is: any other
    path gets the one answer (`server_files.outside`) with nothing looked at. Inside, the path is looked at
    (os.stat), never opened: what is not a regular file (not there, a directory, a FIFO, a device) is refused naming
    where it was looked for; a FIFO opened would hold the request until someone wrote to it."""
    from ..server_files import inside, outside

    path = inside(name, directory)
    if path is None:
        raise refusal(outside(field, "background image", directory, CAMERAS_DIR, NO_BACKGROUND))
    where = "in the cameras directory" if name == str(path) else f"looked for at {path}, in the cameras directory"
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise refusal(f"{field}: {name}: no such file on the server ({where})") from None
    except OSError as exc:  # a name too long, no permission
        raise refusal(f"{field}: {name}: the server cannot look at it ({exc.strerror or exc}; {where})") from None
    if stat.S_ISDIR(mode):
        raise refusal(f"{field}: {name}: a directory, not an image ({where})")
    if not stat.S_ISREG(mode):
        raise refusal(f"{field}: {name}: not a regular file (a FIFO, socket or device; {where}): not opened")
    return str(path)


def manager(request: Request):
    """The app's StreamManager, made on first use and wired to the hub, the store, the profiler and alerts.

    With a live run attached its profiler times the frames and its alert engine reads the camera figures
    (`LiveRuntime.figure_sources`), so camera alerts are raised, stored and acknowledged with the run's own
    (`/api/v1/live/alerts`). Without one, an engine of the cameras' own raises them; they are stored in the
    API's database under simulation id `cameras` (the `alerts` table, through a `LiveStoreWriter`) and
    acknowledged at `POST /api/v1/streams/alerts/{id}/ack`."""
    app = request.app
    existing = getattr(app.state, "vision", None)
    if existing is not None:
        return existing
    with _lock:
        if getattr(app.state, "vision", None) is not None:
            return app.state.vision
        try:
            import cv2  # noqa: F401
        except ImportError:
            raise HTTPException(503, "camera streams need OpenCV on the server: pip install 'signalwise[vision]'") \
                from None
        from signalwise.store import get_engine
        from signalwise.store.violations import ViolationWriter
        from signalwise.vision.manager import StreamManager

        settings = app.state.settings
        hub = app.state.streams
        live = getattr(app.state, "live", None)
        writer = ViolationWriter(get_engine(settings.database_url))
        joined = live is not None and live.alerts is not None  # a live run without alert rules: ours, beside it
        if joined:
            profiler, alerts, on_metrics = live.profiler, live.alerts, None
        else:
            profiler, alerts, on_metrics = _own_alerts(app)
            if live is not None:
                profiler = live.profiler
        mgr = StreamManager(publish=hub.publish, on_violations=writer.put, profiler=profiler,
                            on_metrics=on_metrics, evidence_dir=Path(settings.evidence_dir),
                            source=getattr(live, "cameras", None))  # a live run's cameras: its clock, its signals
        if joined:
            live.figure_sources["vision"] = mgr.metrics
        app.state.vision = mgr
        app.state.vision_profiler = profiler
        app.state.vision_alerts = alerts
        app.state.vision_writer = writer
        return mgr


CAMERA_SIMULATION_ID = "cameras"


def _own_alerts(app):
    """A profiler, an alert engine (camera and process rules) storing and publishing every alert, and the
    figures callback the manager's monitor calls, for a server without a live run."""
    from signalwise.runtime.live.alerts import BUILTIN_RULES, AlertEngine, process_figures
    from signalwise.runtime.live.profiler import Profiler
    from signalwise.store.live import LiveStoreWriter

    settings = app.state.settings
    hub = app.state.streams
    store = LiveStoreWriter(settings.database_url, CAMERA_SIMULATION_ID, Path(settings.camera_alerts_buffer_dir),
                            10_000)
    app.state.vision_alert_store = store

    def stored_and_streamed(alert) -> None:  # or acknowledged
        store.put_alert(alert)
        hub.publish("alert", alert.as_dict())

    rules = [r for r in BUILTIN_RULES if r.metric.startswith("vision_") or r.name.startswith("process_")]
    alerts = AlertEngine(rules, on_raise=stored_and_streamed, on_clear=stored_and_streamed,
                         on_acknowledge=stored_and_streamed)  # streamed too: a console shows who took it

    def on_metrics(figures: dict) -> None:
        alerts.evaluate(time.monotonic(), {**figures, **process_figures()})

    return Profiler(), alerts, on_metrics


def _errors(exc: Exception) -> HTTPException:
    from signalwise.vision.manager import StreamError

    if isinstance(exc, StreamError) and exc.status != 422:
        return HTTPException(exc.status, str(exc))
    return refusal(str(exc))


def _camera(body: StreamIn, directory: Path | None):
    """The camera, its background image confined to the cameras directory: an inline camera's was resolved against
    the directory (`_named_files`), a camera file's is resolved against the file and must still be inside."""
    from signalwise.vision.camera import CameraFileError, camera_from_dict, load_camera

    if body.camera is not None and body.camera_file is not None:
        raise refusal("body: give camera or camera_file, not both")
    try:
        if body.camera is not None:
            return camera_from_dict(body.camera, "body.camera")
        if body.camera_file is None:
            return None
        if _not_regular(body.camera_file):
            raise refusal(f"body.camera_file: {body.camera_file}: not a regular file (a FIFO, socket or device): "
                          "not opened")
        cam = load_camera(body.camera_file)
    except CameraFileError as exc:
        raise refusal(_camera_where(body, exc)) from None
    if cam.background_image is not None:
        cam.background_image = background_file(f"body.camera_file: {body.camera_file}: background_image",
                                               cam.background_image, directory)
    return cam


def _not_regular(path: str) -> bool:
    """Whether `path` (in the cameras directory) is there and neither a regular file nor a directory: a FIFO, whose
    opening would hold the request until someone wrote to it, a socket or a device. Looked at, never opened; a name
    not there is for the reader to say."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _background_where(body: StreamIn) -> str:
    return "body.camera.background_image" if body.camera is not None else \
        f"body.camera_file: {body.camera_file}: background_image"


def _check_background(body: StreamIn, cam) -> None:
    """The background image (a regular file in the cameras directory by now) decoded, as the blobs detector will at
    the start: one OpenCV cannot read is refused now, not a stream that can never start. The other detectors
    read none."""
    if cam is None or not cam.background_image or body.detector != "blobs":
        return
    import cv2

    if cv2.imread(cam.background_image, cv2.IMREAD_COLOR) is None:
        raise refusal(f"{_background_where(body)}: {cam.background_image}: not an image OpenCV can read")


def _camera_where(body: StreamIn, exc: Exception) -> str:
    return str(exc) if body.camera is not None else f"body.camera_file: {exc}"


def _check_video(body: StreamIn, cam) -> None:
    """A video file on the server is opened now, as `vision run` does (`streams.probe_video`): one that is no video,
    that states no frame rate (and `fps` is not given), or whose frame a zone or stop line leaves is refused here,
    not found out by the stream's worker. A stream URL is not opened: a camera that is away now is reconnected to
    when it comes; its frame is checked against the zones when its first frame comes (a zone outside fails the
    stream, naming the zone)."""
    from signalwise.vision.camera import CameraFileError
    from signalwise.vision.streams import VideoOpenError, is_url, probe_video

    if is_url(body.url):
        return
    try:
        probe = probe_video(body.url)
    except VideoOpenError as exc:
        raise refusal(f"body.url: {body.url}: {exc}") from None
    if body.fps is None and probe.fps is None:
        raise refusal(f"body.fps: {body.url}: the container states no frame rate; give fps")
    if cam is not None:
        try:
            cam.check_frame(probe.width_px, probe.height_px, "body.camera" if body.camera is not None else
                            str(body.camera_file))
        except CameraFileError as exc:
            raise refusal(_camera_where(body, exc)) from None


#: how a request runs a camera whose calibration is suspect
ACCEPT_SUSPECT = '"accept_suspect_calibration": true'


def _check_calibration(body: StreamIn, cam) -> None:
    """The checks `vision run` makes of a camera before a run (the surveyed points' residual, a zone seen too
    coarsely): a camera they call suspect is a 422 naming why, unless the body accepts it."""
    from signalwise.vision.manager import suspect_calibration, suspect_refusal

    reasons = suspect_calibration(cam)
    if reasons and not body.accept_suspect_calibration:
        where = "body.camera" if body.camera is not None else f"body.camera_file: {body.camera_file}"
        raise refusal(f"{where}: {suspect_refusal(reasons, ACCEPT_SUSPECT)}")


def _camera_identity(body: StreamIn, posted: dict | None) -> dict | None:
    """The camera as the stream's stored violations name it (`judged_with.camera_file`): the camera file by its
    path and SHA-256, or the inline camera as posted (`manager.camera_identity`)."""
    from signalwise.vision.manager import camera_identity

    if body.camera_file is not None:
        return camera_identity(path=body.camera_file)
    return None if posted is None else camera_identity(contents=posted)


def _camera_taken(mgr, cam, sid: str) -> None:
    """One stream per camera: the violations, counts and zones of two streams under one camera_id would mix."""
    if cam is None:
        return
    other = next((s for s in mgr.list() if s["camera_id"] == cam.camera_id and s["id"] != sid), None)
    if other is not None:
        raise HTTPException(409, f"camera {cam.camera_id!r} is already stream {other['id']!r} ({other['status']}); "
                                 f"delete that stream first, or give this camera its own camera_id")


@router.post("", status_code=201, summary="Add a camera stream (and start it)",
             responses={409: {"description": "a stream of that id exists, its camera_id is another stream's, or "
                                             "the server runs as many streams as it takes"},
                        503: {"description": "OpenCV is not installed on the server; or this server runs several "
                                             "worker processes: camera streams run on a single-worker server"}})
def add_stream(body: StreamIn, request: Request) -> dict:
    from signalwise.vision.streams import is_url

    given, posted_camera = body.url, body.camera
    body = _named_files(body, request)  # 422 for a path outside the cameras directory, a host not allowed
    if not is_url(body.url) and not _is_file(body.url):
        raise refusal(_no_video_file(given, Path(body.url)))
    if body.detector == "onnx" and not body.model:
        raise refusal("body.model: the onnx detector needs a model file")
    if body.model and _not_regular(body.model):
        raise refusal(f"body.model: {body.model}: not a regular file (a FIFO, socket or device): not opened")
    cam = _camera(body, request.app.state.settings.cameras_dir)
    mgr = manager(request)  # 503 without OpenCV, before the video is opened with it
    _check_calibration(body, cam)  # vision run's checks before a run: a suspect camera's calls cannot be trusted
    _check_video(body, cam)
    _check_background(body, cam)
    sid = body.id or (cam.camera_id if cam is not None else f"s{len(mgr.list()) + 1}")
    if sid == "alerts":
        raise refusal("body.id: 'alerts' is reserved (GET /api/v1/streams/alerts lists camera alerts)")
    from signalwise.vision.manager import StreamSpec

    spec = StreamSpec(sid, body.url, cam, body.detector, body.model, body.buffer_size, body.fps, body.loop,
                      accept_suspect_calibration=body.accept_suspect_calibration,
                      camera_file=_camera_identity(body, posted_camera))
    try:
        if body.detector == "onnx":
            from signalwise.vision.detector import make_detector

            make_detector("onnx", model=body.model)  # refuse a bad model now, not in the worker
        with _adding:  # the camera_id check and the add as one: two requests at once cannot both pass it
            _camera_taken(mgr, cam, sid)
            return utc_times(mgr.add(spec, start=body.start))
    except HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - StreamError, OnnxModelError, ValueError: all for people
        raise _errors(exc) from None


@router.get("", summary="Every camera stream with its figures")
def list_streams(request: Request) -> dict:
    workers = several_workers(request)
    if workers is not None:  # no worker of this server runs a stream (`one_process`): none to list
        return {"items": [], "total": 0, "alerts": [],
                "note": f"camera streams run on a single-worker server, and this one runs {workers.count} worker "
                        f"processes ({_told(workers, False)}): it runs none; list them on the single-worker "
                        "`signalwise serve` (--workers 1) that runs them"}
    mgr = getattr(request.app.state, "vision", None)
    items = mgr.list() if mgr is not None else []
    return utc_times({"items": items, "total": len(items),
                      "alerts": [a.as_dict() for a in _camera_alerts(request, True)]})


def _camera_alerts(request: Request, active: bool, limit: int = 100) -> list:
    """The camera streams' alerts (with a live run, its engine's alerts on camera figures); newest first."""
    engine = getattr(request.app.state, "vision_alerts", None)
    if engine is None:
        return []
    items = engine.active() if active else engine.history(10 * limit)
    own = getattr(request.app.state, "live", None) is None or engine is not request.app.state.live.alerts
    items = [a for a in items if own or a.metric.startswith("vision_")]
    return items[:limit]


@router.get("/alerts", summary="Camera alerts: active ones and the most recent history")
def list_alerts(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    return utc_times({"active": [a.as_dict() for a in _camera_alerts(request, True)],
                      "history": [a.as_dict() for a in _camera_alerts(request, False, limit)]})


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge a camera alert (stored with who and when)",
             responses={409: {"description": "acknowledged already (the first acknowledgement is the record)"}})
def acknowledge_alert(alert_id: Annotated[str, PathParam(min_length=1, max_length=64)], request: Request) -> dict:
    from ..auth import who

    engine = getattr(request.app.state, "vision_alerts", None)
    if engine is None:
        raise HTTPException(404, f"no alert {alert_id!r}: no camera stream has run on this server")
    live = getattr(request.app.state, "live", None)
    # the live run's own engine: its route stores the acknowledgement with the run's alerts and streams it;
    # the engine alone would do neither, and a console following `alert` would keep the alert active
    acknowledge = live.acknowledge_alert if live is not None and engine is live.alerts else engine.acknowledge
    try:
        return utc_times(acknowledge(alert_id, who(request)).as_dict())
    except KeyError:
        raise HTTPException(404, f"no alert {alert_id!r}") from None
    except ValueError as exc:  # AlreadyAcknowledged: the first acknowledgement is the record
        raise HTTPException(409, str(exc)) from None


def _existing(request: Request):
    mgr = getattr(request.app.state, "vision", None)
    if mgr is None:
        from signalwise.vision.manager import StreamError  # noqa: F401 - the same message as the manager's

        raise HTTPException(404, "no camera streams on this server (add one with POST /api/v1/streams)")
    return mgr


@router.get("/{stream_id}", summary="One camera stream: status, FPS, drops, latency, pipeline figures")
def get_stream(stream_id: StreamId, request: Request) -> dict:
    try:
        return utc_times(_existing(request).get(stream_id))
    except HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _errors(exc) from None


@router.delete("/{stream_id}", status_code=204, summary="Stop and remove a camera stream")
def delete_stream(stream_id: StreamId, request: Request) -> Response:
    try:
        _existing(request).remove(stream_id) if stream_id in {s["id"] for s in _existing(request).list()} \
            else _existing(request).get(stream_id)
    except HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _errors(exc) from None
    return Response(status_code=204)


@router.post("/{stream_id}/start", summary="Start (or restart) a camera stream")
def start_stream(stream_id: StreamId, request: Request) -> dict:
    try:
        return utc_times(_existing(request).start(stream_id))  # a start that fails keeps why on the stream (`StreamManager.start`)
    except HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _errors(exc) from None


@router.post("/{stream_id}/stop", summary="Stop a camera stream (it stays listed)")
def stop_stream(stream_id: StreamId, request: Request) -> dict:
    try:
        return utc_times(_existing(request).stop(stream_id))
    except HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _errors(exc) from None


def close(app) -> None:
    """Stop every stream and flush the violations (the app is going away)."""
    mgr = getattr(app.state, "vision", None)
    if mgr is not None:
        mgr.close()
        app.state.vision = None
    writer = getattr(app.state, "vision_writer", None)
    if writer is not None:
        writer.flush()
        writer.close()
        app.state.vision_writer = None
    store = getattr(app.state, "vision_alert_store", None)
    if store is not None:
        store.close()
        app.state.vision_alert_store = None
