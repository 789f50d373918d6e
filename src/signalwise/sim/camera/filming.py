"""A SUMO backend that films itself: sumo-gui under Xvfb, one calibrated frame per step.

The camera in the loop runs the ordinary control loop on this backend: each
`step()` asks for a screenshot, steps, and hands the frame (BGR, top-down,
the simulation at the step's end) to `on_frame`, where the vision pipeline
reads it. The controller's observations then come from the camera source the
caller wraps around this backend, not from SUMO's lanes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..backend import SimulationError, SumoBackend, SumoOptions, build_command
from .display import virtual_display
from .gui import VIEW_ID, RenderError, Screenshots, connect, start_sumo_gui, stop_sumo_gui
from .render import PALETTE, calibrate_view, empty_road_frame
from .scene import Scene, camera_file, read_scene
from .views import CameraView

FrameSink = Callable[[np.ndarray, float], None]  # (BGR frame, simulation time it shows)


class FilmingBackend(SumoBackend):
    """`SumoBackend` on sumo-gui, filming the signal `tls_id` from above at `frame_px`, `view_m` wide."""

    def __init__(self, opts: SumoOptions, tls_id: str | None = None, frame_px: tuple[int, int] = (800, 800),
                 view_m: float = 200.0, log_dir: Path | None = None, speed_tolerance_mps: float = 2.0):
        super().__init__(opts)
        self.tls_id = tls_id
        self.frame_px = frame_px
        self.view_m = view_m
        self.log_dir = log_dir
        self.speed_tolerance_mps = speed_tolerance_mps
        self.on_frame: FrameSink | None = None
        self.view: CameraView | None = None
        self.scene: Scene | None = None
        self.camera: dict | None = None  # the camera file of this view (`signalwise vision run --camera`)
        self.frames = 0
        self._rng = np.random.default_rng(opts.seed)
        self._stack = contextlib.ExitStack()
        self._shots: Screenshots | None = None

    def start(self) -> None:
        w, h = self.frame_px
        try:
            display = self._stack.enter_context(virtual_display(max(1280, w + 200), max(1024, h + 200)))
            args = build_command(self.opts)[1:]
            log = (self.log_dir or Path("/tmp")) / "sumo-gui.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            proc, port = start_sumo_gui(args, display, (400, 400), log)
            self._stack.callback(stop_sumo_gui, proc)
            self.api = connect(port, proc)
            self._closed = False
            tls = self.tls_id or self.api.trafficlight.getIDList()[0]
            self.scene = read_scene(self.api, tls)
            cx, cy = self.api.junction.getPosition(self.scene.junction_id)
            half_w, half_h = self.view_m / 2, self.view_m / 2 * h / w
            wanted = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
            self.api.gui.setSchema(VIEW_ID, "real world")
            self._shots = Screenshots(self.api, w, h)
            self._stack.callback(self._shots.close)
            self.view, self.calibration = calibrate_view(self.api, self._shots, wanted, w, h, lambda t: None)
            self.camera = camera_file(self.scene, self.view, "loop-topdown", self.speed_tolerance_mps)
            # vehicles enter 150 m or more outside the view: right after the start the road in view is empty
            background = empty_road_frame(self.api, self._shots, lambda t: ({}, {}, ""))
            if background is not None and self.log_dir is not None:
                import cv2

                cv2.imwrite(str(self.log_dir / "background.png"), background)
                self.camera["background_image"] = str((self.log_dir / "background.png").resolve())
        except (RenderError, OSError) as exc:
            self.close()
            raise SimulationError(f"could not film the simulation: {exc}") from None
        except BaseException:
            self.close()
            raise

    def step(self) -> float:
        self._shots.request()
        t = super().step()
        for vid in self.api.simulation.getDepartedIDList():  # painted as in a render, for the same detector
            self.api.vehicle.setColor(vid, (*PALETTE[int(self._rng.integers(len(PALETTE)))], 255))
        frame = self._shots.collect()
        self.frames += 1
        if self.on_frame is not None:
            self.on_frame(frame, t)
        return t

    def close(self) -> None:
        super().close()
        self._stack.close()
