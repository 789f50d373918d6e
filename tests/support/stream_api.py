"""The camera-stream API as the stream tests serve it: an app on a migrated SQLite store with an operator's key,
and the one-second synthetic clip they stream."""

from __future__ import annotations

from pathlib import Path

from support.migrated_databases import migrated_sqlite


def stream_api(tmp_path: Path, **settings):
    """(app, headers with an `operate` + `read` key) on a new store in `tmp_path`; `settings` as `Settings`' own
    (`cameras_dir=`, say)."""
    from signalwise.api import create_app
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key

    url = migrated_sqlite(tmp_path / "api.db")
    app = create_app(Settings(database_url=url, evidence_dir=tmp_path / "evidence",
                              camera_alerts_buffer_dir=tmp_path / "buffer", **settings))
    return app, {"X-API-Key": create_key(get_engine(url), "op", ["operate", "read"])[1]}


def one_second_clip(folder: Path):
    """(`folder`/cam.mp4, a 1 s video of a small synthetic scene, and the scene, whose `camera_config()` is its
    camera file's contents)."""
    from signalwise.vision.synthetic import Scene, write_video

    scene = Scene(width_px=320, height_px=240, px_per_m=4.0, fps=10.0, seed=4, arrivals_per_s=0.15)
    write_video(folder / "cam.mp4", scene, 1.0)
    return folder / "cam.mp4", scene


def fifo_has_reader(fifo) -> bool:
    """Whether a process holds `fifo` open for reading (opening its write end without waiting says so); when one
    does, a byte is written so that the reader goes on (and fails), and the request holding it can end."""
    import errno
    import os

    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        assert exc.errno == errno.ENXIO, exc
        return False
    os.write(fd, b"x")
    os.close(fd)
    return True
