"""A record's vehicle class and emergency flag come from SUMO's vClass of the vehicle's type, read from the route
files that define it, not from the text of the vType id ("articulated" is a bus, "emergency_shuttle" is no
emergency vehicle)."""

from __future__ import annotations

from signalwise.sim.outputs import read_vtype_classes
from signalwise.store.vehicle_classes import is_emergency, record_class

ROUTES = """<routes>
    <vType id="articulated" vClass="bus" length="18"/>
    <vType id="emergency_shuttle" vClass="bus"/>
    <vType id="ambulance" vClass="emergency"/>
    <vType id="MAN_Lions" length="12"/>
    <vTypeDistribution id="freight">
        <vType id="hgv40" vClass="trailer" probability="0.5"/>
        <vType id="van" vClass="delivery" probability="0.5"/>
    </vTypeDistribution>
    <vehicle id="v" type="articulated" depart="0"><route edges="a b"/></vehicle>
</routes>
"""
ADDITIONAL = '<additional><vType id="cyclist" vClass="bicycle"/></additional>'


def test_classes_come_from_the_vclass_of_each_type(tmp_path):
    (tmp_path / "r.rou.xml").write_text(ROUTES)
    (tmp_path / "t.add.xml").write_text(ADDITIONAL)
    vclass = read_vtype_classes([tmp_path / "r.rou.xml", tmp_path / "t.add.xml"])
    classes = {v: record_class(vclass[v]) for v in
               ("articulated", "emergency_shuttle", "ambulance", "MAN_Lions", "hgv40", "van", "cyclist",
                "DEFAULT_VEHTYPE", "DEFAULT_BIKETYPE")}
    assert classes == {"articulated": "bus", "emergency_shuttle": "bus", "ambulance": "car", "MAN_Lions": "car",
                       "hgv40": "truck", "van": "truck", "cyclist": "bike", "DEFAULT_VEHTYPE": "car",
                       "DEFAULT_BIKETYPE": "bike"}
    assert [v for v in vclass if is_emergency(vclass[v])] == ["ambulance"]
