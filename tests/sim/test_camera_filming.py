"""The filming backend: an ordinary run on sumo-gui that hands every step's frame to the caller."""

from __future__ import annotations

import numpy as np
import pytest
from support.xvfb import xvfb_unavailable_reason

cv2 = pytest.importorskip("cv2")

pytestmark = pytest.mark.slow


def test_a_run_films_every_step_and_describes_its_camera(tmp_path):
    reason = xvfb_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.run import execute_run
    from signalwise.sim.camera.filming import FilmingBackend

    cfg = RunConfig(scenario="single", controller="fixed", seed=1, duration_s=10, step_length_s=0.2,
                    out_dir=tmp_path)
    frames: list[tuple[float, np.ndarray]] = []
    backends = []

    def factory(opts):
        b = FilmingBackend(opts, log_dir=tmp_path / "film")
        b.on_frame = lambda frame, t: frames.append((t, frame))
        backends.append(b)
        return b

    result = execute_run(cfg, tmp_path / "run", backend_factory=factory)
    assert result.status == "complete"
    times = [t for t, _f in frames]
    # one frame per step, none skipped, to the end (calibration took the first few steps)
    assert np.allclose(np.diff(times), 0.2) and times[-1] == pytest.approx(10.0) and times[0] <= 1.0
    assert all(f.shape == (800, 800, 3) for _t, f in frames)
    b = backends[0]
    assert b.calibration["marker_error_px"] <= 2.0
    cam = b.camera
    assert cam["device_id"] == "C" and len(cam["calibration"]) >= 4 and len(cam["stop_lines"]) == 8
    background = cv2.imread(cam["background_image"])
    assert background.shape == (800, 800, 3)
    # the run's own evidence is there as for any run: the loop drove this backend
    assert (tmp_path / "run" / "signal_states.csv").read_text().startswith("time_s,device_id,state")
