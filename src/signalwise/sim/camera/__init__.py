"""Render SUMO to video with exact ground truth, to grade cameras against (`signalwise vision render`)."""

from .display import DisplayUnavailable, xvfb_available
from .faults import FaultPlan
from .gui import RenderError
from .render import RenderOptions, RenderResult, render
from .views import CameraView, oblique_view, topdown_view

__all__ = ["CameraView", "DisplayUnavailable", "FaultPlan", "RenderError", "RenderOptions", "RenderResult",
           "oblique_view", "render", "topdown_view", "xvfb_available"]
