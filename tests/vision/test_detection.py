"""Detectors on a synthetic scene with exact truth: moving blobs, standing vehicles, and the ONNX detector's
input and output handling on tiny models built with onnx.helper (no weights downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
from vision_scenes import small_scene

from signalwise.vision.boxes import box_iou
from signalwise.vision.detections import Detections


def _recall(detector, seconds=45.0, warmup_s=3.0):
    """(moving recall, stopped recall, precision) of a detector over a scene, at IoU 0.3."""
    scene = small_scene(seed=3)
    hit = {True: [0, 0], False: [0, 0]}
    false, total = 0, 0
    for image, t, truth, _state in scene.frames(seconds):
        dets = detector.detect(image, t)
        if t < warmup_s:
            continue
        gt = [v for v in truth if (v.box_px[2] - v.box_px[0]) * (v.box_px[3] - v.box_px[1]) >= 60]
        iou = box_iou(np.array([v.box_px for v in gt]).reshape(-1, 4), dets.xyxy)
        for k, v in enumerate(gt):
            hit[v.moving][1] += 1
            hit[v.moving][0] += bool(iou.shape[1] and iou[k].max() >= 0.3)
        total += len(dets)
        false += int((iou.max(axis=0) < 0.3).sum()) if len(gt) else len(dets)
    return hit[True][0] / hit[True][1], hit[False][0] / hit[False][1], 1 - false / max(total, 1)


@pytest.mark.slow
def test_moving_blobs_find_moving_vehicles_and_lose_stopped_ones():
    from signalwise.vision.motion import MovingBlobDetector

    moving, stopped, precision = _recall(MovingBlobDetector(min_area_px=40, close_px=5))
    assert moving >= 0.85 and precision >= 0.85, (moving, precision)
    assert stopped < 0.5, stopped  # MOG2 forgets what stands: why the standing method exists


@pytest.mark.slow
def test_blob_detector_keeps_stopped_vehicles():
    from signalwise.vision.blobs import BlobDetector

    moving, stopped, precision = _recall(BlobDetector(min_area_px=40, close_px=5))
    assert moving >= 0.9 and stopped >= 0.9 and precision >= 0.85, (moving, stopped, precision)


def test_blob_detector_says_which_blobs_move():
    from signalwise.vision.blobs import BlobDetector

    det = BlobDetector(min_area_px=40, close_px=5)
    agree = []
    for image, t, truth, _s in small_scene(seed=3).frames(30):
        d = det.detect(image, t)
        if t < 5:
            continue
        iou = box_iou(np.array([v.box_px for v in truth]).reshape(-1, 4), d.xyxy)
        for k, v in enumerate(truth):
            if iou.shape[1] and iou[k].max() >= 0.5 and (v.speed_mps > 3 or v.speed_mps == 0):
                agree.append(bool(d.moving[iou[k].argmax()]) == (v.speed_mps > 3))
    assert len(agree) > 200 and np.mean(agree) >= 0.8, (len(agree), np.mean(agree))


# -- the ONNX detector ---------------------------------------------------------------------------------------
onnx = pytest.importorskip("onnx", reason="the ONNX detector tests build models with the onnx package")
pytest.importorskip("onnxruntime", reason="the ONNX detector needs onnxruntime (pip install 'signalwise[onnx]')")

BOX_A = (32.0, 32.0, 16.0, 8.0)  # cx, cy, w, h in the 64x64 input


def _model(path, input_hw=(64, 64), output_rank3=True):
    """A YOLOv8-shaped model, 2 classes, 3 candidates, output [1, 6, 3]:

    0: BOX_A, class 0, score = the input's R channel at BOX_A's centre (so the score says whether the
       frame was letterboxed, converted to RGB, laid out NCHW and scaled to [0, 1]);
    1: BOX_A moved 2 px, class 0, score 0.6 (NMS must drop it under candidate 0);
    2: elsewhere, class 1, score 0.9 (a class filter must drop it).
    """
    from onnx import TensorProto, helper

    h, w = input_hw
    cy, cx = int(BOX_A[1]), int(BOX_A[0])
    const = lambda name, arr, dt=TensorProto.FLOAT: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=helper.make_tensor(name + "_v", dt, np.shape(arr),
                                                         np.asarray(arr).ravel().tolist()))
    boxes = np.array([[BOX_A, (BOX_A[0] + 2, *BOX_A[1:]), (20.0, 40.0, 8.0, 8.0)]], np.float32).transpose(0, 2, 1)
    nodes = [
        const("starts", [0, 0, cy, cx], TensorProto.INT64), const("ends", [1, 1, cy + 1, cx + 1], TensorProto.INT64),
        helper.make_node("Slice", ["images", "starts", "ends"], ["px"]),  # [1, 1, 1, 1]: R at the centre
        const("shape3", [1, 1, 1], TensorProto.INT64),
        helper.make_node("Reshape", ["px", "shape3"], ["s0"]),
        const("s1", np.full((1, 1, 1), 0.6, np.float32)), const("s2", np.zeros((1, 1, 1), np.float32)),
        helper.make_node("Concat", ["s0", "s1", "s2"], ["class0"], axis=2),
        const("class1", np.array([[[0.0, 0.0, 0.9]]], np.float32)),
        helper.make_node("Concat", ["class0", "class1"], ["scores"], axis=1),
        const("boxes", boxes),
        helper.make_node("Concat", ["boxes", "scores"], ["out"], axis=1),
    ]
    out_shape = [1, 6, 3] if output_rank3 else [6, 3]
    if not output_rank3:
        nodes += [const("shape2", [6, 3], TensorProto.INT64), helper.make_node("Reshape", ["out", "shape2"], ["out2"])]
    graph = helper.make_graph(nodes, "yolo_like", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                                [1, 3, h, w])],
                              [helper.make_tensor_value_info("out" if output_rank3 else "out2", TensorProto.FLOAT,
                                                             out_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _frame(color_bgr):
    """200x100 frame; the rectangle that letterboxes onto BOX_A (scale 0.32, 16 px pad on top) in `color`."""
    img = np.full((100, 200, 3), 40, np.uint8)
    img[38:63, 75:125] = color_bgr
    return img


def test_onnx_detector_letterboxes_converts_to_rgb_scales_and_maps_boxes_back(tmp_path):
    from signalwise.vision.onnx_detector import OnnxDetector

    det = OnnxDetector(_model(tmp_path / "m.onnx"), confidence=0.25, iou=0.45)
    assert det.input_hw == (64, 64)
    d = det.detect(_frame((0, 0, 255)), 0.0)  # pure red in BGR
    by_class = {int(c): i for i, c in enumerate(d.class_id)}
    assert sorted(by_class) == [0, 1] and len(d) == 2  # candidate 1 suppressed by NMS
    a = d.xyxy[by_class[0]]
    np.testing.assert_allclose(a, [75.0, 37.5, 125.0, 62.5], atol=0.01)  # input box mapped back to the frame
    assert d.confidence[by_class[0]] == pytest.approx(1.0, abs=1e-6)  # R = 255 -> 1.0: RGB, NCHW, /255
    b = d.xyxy[by_class[1]]  # (20, 40, 8, 8) in the input: x 16..24, y 36..44, less 16 px of padding on top
    np.testing.assert_allclose(b, [16 / 0.32, 20 / 0.32, 24 / 0.32, 28 / 0.32], atol=0.01)


def test_onnx_detector_reads_blue_as_blue_and_filters_classes(tmp_path):
    from signalwise.vision.onnx_detector import OnnxDetector

    path = _model(tmp_path / "m.onnx")
    blue = OnnxDetector(path, confidence=0.25).detect(_frame((255, 0, 0)), 0.0)
    # a blue frame has R = 0 at the centre: candidate 0 scores 0, so candidate 1 (0.6) is what remains of class 0
    assert sorted(blue.class_id.tolist()) == [0, 1]
    assert blue.confidence[blue.class_id == 0][0] == pytest.approx(0.6)
    only0 = OnnxDetector(path, classes=[0]).detect(_frame((0, 0, 255)), 0.0)
    assert only0.class_id.tolist() == [0]
    none = OnnxDetector(path, confidence=0.95).detect(_frame((0, 0, 255)), 0.0)
    assert none.class_id.tolist() == [0]  # 1.0 >= 0.95; the 0.9 and 0.6 ones are below


def test_onnx_detector_refuses_what_it_cannot_use(tmp_path):
    from signalwise.vision.onnx_detector import OnnxDetector, OnnxModelError

    with pytest.raises(OnnxModelError, match="no such model file"):
        OnnxDetector(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(OnnxModelError, match="not a model onnxruntime can load"):
        OnnxDetector(junk)
    with pytest.raises(OnnxModelError, match=r"flat.onnx: output of shape \[6, 3\] is not YOLOv8's \[1, 4 \+ classes, N\]"):
        OnnxDetector(_model(tmp_path / "flat.onnx", output_rank3=False))  # refused when loaded, not at a frame


def test_vision_run_with_a_model_of_another_output_is_one_error_line_and_writes_nothing(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import yaml
    from vision_scenes import small_scene

    from signalwise.vision.synthetic import write_video

    scene = small_scene(seed=3)
    write_video(tmp_path / "v.mp4", scene, 1.0)
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(scene.camera_config()))
    model = _model(tmp_path / "flat.onnx", output_rank3=False)
    out = tmp_path / "out"
    p = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "vision", "run", "--video",
                        str(tmp_path / "v.mp4"), "--camera", str(tmp_path / "cam.yaml"), "--detector", "onnx",
                        "--model", str(model), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: ") and "is not YOLOv8's [1, 4 + classes, N]" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not out.exists()


def test_detections_select_and_merge_all_fields_together():
    d = Detections(np.array([[0, 0, 10, 10], [5, 5, 20, 30]]), np.array([0.9, 0.4]), moving=[True, False])
    sub = d[d.confidence > 0.5]
    assert len(sub) == 1 and sub.moving.tolist() == [True] and sub.tracker_id.tolist() == [-1]
    both = Detections.merge([sub, d[np.array([1])]])
    assert both.confidence.tolist() == pytest.approx([0.9, 0.4]) and both.moving.tolist() == [True, False]
    np.testing.assert_allclose(d.anchors_px, [[5, 10], [12.5, 30]])


@pytest.mark.parametrize("n_frames", [3, 4, 11])
def test_the_bootstrap_background_is_the_per_pixel_median_of_its_frames(n_frames):
    from signalwise.vision.standing import median_image

    rng = np.random.default_rng(n_frames)
    frames = rng.integers(0, 256, (n_frames, 48, 64, 3), dtype=np.uint8)
    expected = np.median(frames, axis=0)
    got = median_image(frames.copy())
    assert got.dtype == np.float32 and got.shape == (48, 64, 3)
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_the_empty_road_is_learnt_from_frames_where_vehicles_pass():
    """A vehicle in some of the bootstrap frames is not in the background: the median of the frames
    keeps the road (the preallocated samples fill one a second)."""
    from signalwise.vision.standing import StandingBlobDetector

    road = np.full((60, 80, 3), 90, np.uint8)
    det = StandingBlobDetector(bootstrap_s=6.0, max_width_px=None)
    for t in range(8):
        frame = road.copy()
        if t in (1, 4):  # a car passing over the same spot in two frames of seven
            frame[20:30, 30:50] = 250
        det.present(frame, float(t))
    assert det.background is not None and int(det.background[25, 40].max()) == 90
