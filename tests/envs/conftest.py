"""libsumo runs one simulation per process: every environment test starts and ends with none open."""

from __future__ import annotations

import pytest

from signalwise.sim.sumo_home import import_libsumo


@pytest.fixture(autouse=True)
def no_simulation_left_open():
    libsumo = import_libsumo()
    assert not libsumo.simulation.isLoaded(), "a simulation was already open before the test"
    yield
    assert not libsumo.simulation.isLoaded(), "the test left a simulation open"
