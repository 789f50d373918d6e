"""A stream judges no red light (it has no signal states): its figures say so with null, and /metrics exports no
red-light count for it, so no dashboard reads "0 red-light violations" where nobody looked."""

from __future__ import annotations

from support.waiting import value_within


def test_a_streams_red_light_is_null_and_not_exported(tmp_path):
    from fastapi.testclient import TestClient
    from vision_scenes import small_scene

    from signalwise.api import create_app
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key
    from signalwise.vision.synthetic import write_video

    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(Settings(database_url=url, evidence_dir=tmp_path / "evidence",
                              camera_alerts_buffer_dir=tmp_path / "buffer", cameras_dir=tmp_path))
    op = {"X-API-Key": create_key(get_engine(url), "operator", ["operate"])[1]}
    scene = small_scene(seed=2)
    write_video(tmp_path / "clip.mp4", scene, 2.0)
    with TestClient(app) as c:
        r = c.post("/api/v1/streams", headers=op, json={"id": "cam-n", "url": str(tmp_path / "clip.mp4"),
                                                        "camera": scene.camera_config()})
        assert r.status_code == 201, r.text
        s = value_within(lambda: x if (x := c.get("/api/v1/streams/cam-n").json())["pipeline"]["frames"] >= 5 else None,
                         20.0)
        assert s["pipeline"]["red_light"] is None and s["pipeline"]["speeding"] == 0, s["pipeline"]
        text = c.get("/metrics").text
        assert 'signalwise_vision_violations_total{kind="speeding",stream="cam-n"} 0.0' in text
        assert 'kind="red_light"' not in text
