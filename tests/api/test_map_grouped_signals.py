"""The dashboard's map of a signal whose state string has grouped indices (netconvert --tls.group-signals): one
character in the state string serves several lanes, and the approach lists it once with each of those lanes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from signalwise.api.routers.pages import _signals_from_net, network_geometry
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import resolve_scenario


def test_a_grouped_signal_index_is_one_link_of_its_approach_with_every_lane_it_serves():
    net = Path(resolve_scenario(RunConfig(scenario="resco:ingolstadt21")).net_file)
    signals = [s for s in _signals_from_net(net) if s["id"] == "243641585"]
    served = {}  # index -> lanes, for the indices that serve more than one lane
    for link in signals[0]["links"]:
        served.setdefault(link["index"], set()).add(link["in_lane"])
    grouped = {i: lanes for i, lanes in served.items() if len(lanes) > 1}
    assert len(grouped) == 2, served  # indices 0 and 3 each serve two lanes of one approach

    (shown,) = network_geometry(net, signals)["intersections"]
    for approach in shown["approaches"]:
        assert not [i for i, n in Counter(approach["links"]).items() if n > 1], approach["links"]
    for index, lanes in grouped.items():
        (approach,) = [a for a in shown["approaches"] if index in a["links"]]
        assert lanes <= {lane["id"] for lane in approach["lanes"]}
