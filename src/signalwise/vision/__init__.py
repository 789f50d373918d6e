"""Cameras as detectors: streams, detection, tracking, calibration, zones, speed and violations.

Needs the `vision` extra (OpenCV, headless); the ONNX detector needs `onnx`.
Public names are imported on first use (PEP 562), so `signalwise --help` and
the command table never load OpenCV. docs/vision.md describes each name.
"""

from signalwise._lazy import lazy_names

_HOMES = {
    "Detections": ".detections",
    "MovingBlobDetector": ".motion",
    "StandingBlobDetector": ".standing",
    "BlobDetector": ".blobs",
    **dict.fromkeys(("OnnxDetector", "OnnxModelError"), ".onnx_detector"),
    "ByteTracker": ".bytetrack",
    **dict.fromkeys(("Homography", "CalibrationError"), ".calibration"),
    "SpeedEstimator": ".speed",
    **dict.fromkeys(("CameraConfig", "CameraFileError", "camera_from_dict", "load_camera"), ".camera"),
    **dict.fromkeys(("SignalTimeline", "SignalFileError"), ".signals"),
    **dict.fromkeys(("Pipeline", "FrameResult", "TrackPoint"), ".pipeline"),
    "Crossing": ".stoplines",
    **dict.fromkeys(("Violation", "SpeedingRule"), ".violations"),
    **dict.fromkeys(("TicketedVehicles", "RepeatCall"), ".reacquire"),
    "ZoneState": ".zones",
    "EvidenceWriter": ".evidence",
    "MjpegServer": ".mjpeg_server",
    **dict.fromkeys(("Scene", "write_video"), ".synthetic"),
    **dict.fromkeys(("StreamReader", "Frame", "StreamStats"), ".streams"),
    **dict.fromkeys(("StreamManager", "StreamSpec"), ".manager"),
    "CameraObservationSource": ".source",
    "make_detector": ".detector",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES)


__all__ = sorted(_HOMES)
