"""A record's vehicle classes from SUMO's vehicle classes (vClass), never from the text of a vType's id.

A record counts vehicles as car, bus, truck, bike or rickshaw (`schemas.VehicleCounts`) and flags an approach
where an emergency vehicle was present. A network's vTypes are named freely ("articulated", "MAN_Lions", "BRT",
"emergency_shuttle"); what SUMO itself goes by, and preemption with it, is the type's vClass
(https://sumo.dlr.de/docs/Definition_of_Vehicles%2C_Vehicle_Types%2C_and_Routes.html#abstract_vehicle_class).
"""

from __future__ import annotations

#: SUMO vClass -> the record's class; any other vClass (passenger, taxi, emergency, authority, motorcycle, ...) is a
#: car. SUMO has no rickshaw class: a record counts one only from a source that says so (a camera's detector).
RECORD_CLASS = {
    "bus": "bus", "coach": "bus",
    "truck": "truck", "trailer": "truck", "delivery": "truck",
    "bicycle": "bike",
}
#: the vClass of the vehicles emergency preemption serves (`sim.backend`), and a record's "emergency vehicle present"
EMERGENCY_VCLASS = "emergency"


def record_class(vclass: str) -> str:
    """The record's class of a vehicle of SUMO vClass `vclass` (an emergency vehicle counts as a car)."""
    return RECORD_CLASS.get(vclass, "car")


def is_emergency(vclass: str) -> bool:
    """Whether a vehicle of this vClass is an emergency vehicle, as preemption judges it."""
    return vclass == EMERGENCY_VCLASS
