"""A user-supplied YOLOv8-format ONNX model, run with onnxruntime (the `onnx` extra).

Input: the model's one image input, NCHW float32 RGB in [0, 1], of the size
its shape states (640 when dynamic). A frame is letterboxed into it: scaled
to fit without distortion, centred, padded with grey 114 (as YOLOv8 trains).
Output: YOLOv8's `[1, 4 + classes, N]`: per candidate a box centre, width and
height in input pixels, then one score per class. Candidates below
`confidence` and of classes not asked for are dropped, the rest go through
non-maximum suppression per class, and boxes are mapped back to the frame.
A model is run once on a grey frame when loaded: one that cannot run or
gives another output is refused then.

Nothing is downloaded: the model is a file the user has.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .boxes import nms
from .detections import Detections

DEFAULT_SIZE = 640
PAD_VALUE = 114
#: COCO classes that are vehicles (car, motorcycle, bus, truck): the usual filter for a COCO-trained model
COCO_VEHICLES = (2, 3, 5, 7)


class OnnxModelError(ValueError):
    """The model cannot be used: the reason, naming the file, in one line."""


def letterbox(image: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """(padded image of `size_hw`, scale, (pad_x, pad_y)): frame px = (input px - pad) / scale."""
    h, w = image.shape[:2]
    th, tw = size_hw
    scale = min(th / h, tw / w)
    nw, nh = round(w * scale), round(h * scale)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else image
    pad_x, pad_y = (tw - nw) / 2, (th - nh) / 2
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    out = cv2.copyMakeBorder(resized, top, th - nh - top, left, tw - nw - left, cv2.BORDER_CONSTANT,
                             value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return out, scale, (float(left), float(top))


def to_tensor(image_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 HWC -> RGB float32 NCHW in [0, 1]."""
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)


def decode(output: np.ndarray, confidence: float, iou: float, classes: tuple[int, ...] | None,
           scale: float, pad: tuple[float, float], frame_hw: tuple[int, int]) -> Detections:
    """YOLOv8 `[1, 4 + nc, N]` -> Detections in frame pixels (see the module's docstring)."""
    out = np.asarray(output)
    if out.ndim != 3 or out.shape[0] != 1 or out.shape[1] < 5:
        raise OnnxModelError(f"output of shape {list(out.shape)} is not YOLOv8's [1, 4 + classes, N]")
    pred = out[0].T  # (N, 4 + nc)
    scores_all = pred[:, 4:]
    cls = scores_all.argmax(axis=1)
    score = scores_all[np.arange(len(pred)), cls]
    keep = score >= confidence
    if classes is not None:
        keep &= np.isin(cls, classes)
    pred, cls, score = pred[keep], cls[keep], score[keep]
    if not len(pred):
        return Detections.empty()
    cx, cy, w, h = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    order = nms(xyxy, score, iou, class_id=cls)
    xyxy, score, cls = xyxy[order], score[order], cls[order]
    xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - pad[0]) / scale
    xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - pad[1]) / scale
    fh, fw = frame_hw
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, fw)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, fh)
    ok = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
    return Detections(xyxy[ok], score[ok], cls[ok].astype(np.int32), moving=np.ones(int(ok.sum()), bool))


class OnnxDetector:
    """`detect(frame, time_s)` with a YOLOv8-format model; `classes` keeps only those class ids."""

    name = "onnx"

    def __init__(self, model_path: str | Path, *, confidence: float = 0.25, iou: float = 0.45,
                 classes: tuple[int, ...] | list[int] | None = None, threads: int = 1):
        path = Path(model_path)
        try:
            exists = path.is_file()
        except (OSError, ValueError):
            exists = False
        if not exists:
            raise OnnxModelError(f"{path}: no such model file")
        try:
            import onnxruntime as ort
        except ImportError:
            raise OnnxModelError("the ONNX detector needs onnxruntime: pip install 'signalwise[onnx]'") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise OnnxModelError(f"{path}: not a model onnxruntime can load ({first[:200]})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise OnnxModelError(f"{path}: expected one image input [1, 3, H, W], got "
                                 f"{[list(i.shape) for i in inputs]}")
        shape = inputs[0].shape
        if shape[1] not in (3, "3") and isinstance(shape[1], int):
            raise OnnxModelError(f"{path}: input has {shape[1]} channels, expected 3 (RGB)")
        h, w = shape[2], shape[3]
        self.input_hw = (h if isinstance(h, int) and h > 0 else DEFAULT_SIZE,
                         w if isinstance(w, int) and w > 0 else DEFAULT_SIZE)
        self.input_name = inputs[0].name
        self.path = path
        self.confidence, self.iou = confidence, iou
        self.classes = tuple(int(c) for c in classes) if classes is not None else None
        self._probe()

    def _probe(self) -> None:
        """One run on a grey frame, so a model whose output is not YOLOv8's is refused when loaded, before a
        video run has written anything, not at its first frame."""
        try:
            self.detect(np.full((*self.input_hw, 3), PAD_VALUE, np.uint8))
        except OnnxModelError as exc:
            raise OnnxModelError(f"{self.path}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a model it cannot run
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise OnnxModelError(f"{self.path}: running it on a frame failed ({first[:200]})") from None

    def detect(self, image: np.ndarray, time_s: float = 0.0) -> Detections:
        boxed, scale, pad = letterbox(image, self.input_hw)
        (out, *_rest) = self.session.run(None, {self.input_name: to_tensor(boxed)})
        return decode(out, self.confidence, self.iou, self.classes, scale, pad, image.shape[:2])
