"""Controllers, the safety shield, preemption and fallback."""

from .base import ControlContext, Controller, UnknownController, available, make, register
from .shield import IntersectionShield, ShieldConfig, clearance_state

__all__ = ["ControlContext", "Controller", "IntersectionShield", "ShieldConfig", "UnknownController",
           "available", "clearance_state", "make", "register"]
