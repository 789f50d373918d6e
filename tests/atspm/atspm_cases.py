import datetime as dt

import pandas as pd
import pytest

T0 = dt.datetime(2025, 1, 6, 7, 0, 0)


def make_events(rows, start=T0):
    """(seconds after start, device, code, parameter) -> events DataFrame."""
    return pd.DataFrame({
        "TimeStamp": [start + dt.timedelta(seconds=s) for s, *_ in rows],
        "DeviceId": [str(r[1]) for r in rows],
        "EventId": [int(r[2]) for r in rows],
        "Parameter": [int(r[3]) for r in rows],
    })


def make_config(rows):
    """(device, phase, channel, function) -> detector configuration DataFrame."""
    return pd.DataFrame(rows, columns=["DeviceId", "Phase", "Parameter", "Function"]).astype({"DeviceId": str})


@pytest.fixture
def events():
    return make_events


@pytest.fixture
def config():
    return make_config
