"""One interface for every detector: `detect(image_bgr, time_s) -> Detections`; and building one by name."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .detections import Detections

KINDS = ("blobs", "moving-blobs", "onnx")


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray, time_s: float) -> Detections: ...


def make_detector(kind: str = "blobs", *, model: str | None = None, classes=None, confidence: float = 0.25,
                  camera=None) -> Detector:
    """`blobs` (moving and standing), `moving-blobs` (MOG2 alone), or `onnx` with `model` (a .onnx file)."""
    if kind == "blobs":
        if camera is not None:
            from .pipeline import default_detector

            return default_detector(camera)
        from .blobs import BlobDetector

        return BlobDetector()
    if kind == "moving-blobs":
        from .motion import MovingBlobDetector

        return MovingBlobDetector()
    if kind == "onnx":
        if not model:
            raise ValueError("the onnx detector needs a model file (--model FILE.onnx)")
        from .onnx_detector import OnnxDetector

        return OnnxDetector(model, classes=classes, confidence=confidence)
    raise ValueError(f"unknown detector {kind!r}; choose from {', '.join(KINDS)}")
