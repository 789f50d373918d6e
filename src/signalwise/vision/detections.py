"""`Detections`: the one type every vision stage takes and gives (supervision's idea, our fields).

Boxes are pixel corners `xyxy` (N, 4); `confidence` is in [0, 1];
`class_id` is the detector's class (0 for blobs); `tracker_id` is set by the
tracker (-1 before); `moving` says whether the detection came from motion
(True) or from a standing-vehicle method (False). Everything is a numpy array
of length N, so a mask selects a subset of all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _f32(a, shape) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).reshape(shape)


@dataclass(frozen=True, eq=False)
class Detections:
    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    tracker_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    moving: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        xyxy = _f32(self.xyxy, (-1, 4))
        n = len(xyxy)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", _f32(self.confidence, (n,)))
        object.__setattr__(self, "class_id", np.zeros(n, np.int32) if self.class_id is None
                           else np.asarray(self.class_id, np.int32).reshape(n))
        object.__setattr__(self, "tracker_id", np.full(n, -1, np.int64) if self.tracker_id is None
                           else np.asarray(self.tracker_id, np.int64).reshape(n))
        object.__setattr__(self, "moving", np.ones(n, bool) if self.moving is None
                           else np.asarray(self.moving, bool).reshape(n))

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.xyxy for p in parts]), np.concatenate([p.confidence for p in parts]),
                   np.concatenate([p.class_id for p in parts]), np.concatenate([p.tracker_id for p in parts]),
                   np.concatenate([p.moving for p in parts]))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Detections:
        """A subset: a boolean mask or an array of indices."""
        index = np.asarray(index)
        if index.dtype != bool:
            index = index.astype(np.int64).reshape(-1)
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.tracker_id[index],
                          self.moving[index])

    def with_tracker_ids(self, ids) -> Detections:
        return Detections(self.xyxy, self.confidence, self.class_id, np.asarray(ids, np.int64), self.moving)

    @property
    def anchors_px(self) -> np.ndarray:
        """Bottom centre of each box (N, 2): where a vehicle touches the road in most camera views."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2
        return np.stack([x, self.xyxy[:, 3]], axis=1)

    @property
    def centers_px(self) -> np.ndarray:
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2], axis=1)

    @property
    def area_px(self) -> np.ndarray:
        return np.clip(self.xyxy[:, 2] - self.xyxy[:, 0], 0, None) * np.clip(self.xyxy[:, 3] - self.xyxy[:, 1], 0, None)

    def anchors(self, where: str = "bottom") -> np.ndarray:
        """`bottom` (bottom centre) or `center` of each box."""
        return self.centers_px if where == "center" else self.anchors_px
