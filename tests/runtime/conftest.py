"""Fixtures of the detector feed's tests (HTTP and MQTT alike): `corridor`'s signals with the detectors a run
plans for them, and a fresh feed over them."""

from __future__ import annotations

import dataclasses

import pytest

from signalwise.envs.episode import probe_network
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.feeds import DetectorFeed
from signalwise.runtime.loop import resolve_scenario
from signalwise.sim.detectors import plan_detectors


@pytest.fixture(scope="module")
def corridor():
    cfg = RunConfig(scenario="corridor")
    scenario = resolve_scenario(cfg)
    inters, _lengths = probe_network(cfg, scenario)
    by_tls = plan_detectors(scenario.net_file)
    return [dataclasses.replace(i, detectors=by_tls.get(i.id, ())) for i in inters]


@pytest.fixture
def feed(corridor):
    return DetectorFeed(corridor)
