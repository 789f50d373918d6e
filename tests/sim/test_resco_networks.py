"""`resco:NAME` runs RESCO's own network file, not sumo-rl's edited copy of it."""

from __future__ import annotations

import hashlib
import shutil
import xml.etree.ElementTree as ET

import pytest

from signalwise.sim.resco_networks import RESCO_NET_SHA256, RescoNetworkError, resco_sumocfg
from signalwise.sim.scenario import ScenarioError, _resco_root, from_sumocfg, load

CLUSTER = ("cluster_306484187_cluster_1200363791_1200363826_1200363834_1200363898_1200363927_1200363938_"
           "1200363947_1200364074_1200364103_1507566554_1507566556_255882157_306484190")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNALWISE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _green_states(net_file, tls_id):
    logic = next(t for t in ET.parse(net_file).getroot().iter("tlLogic") if t.get("id") == tls_id)
    return [p.get("state") for p in logic.iter("phase")]


@pytest.mark.parametrize("name", ["ingolstadt7", "ingolstadt21"])
def test_the_phases_sumo_rl_commented_out_are_restored_to_rescos_file(name, cache):
    copy = _resco_root() / name / f"{name}.net.xml"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() != RESCO_NET_SHA256[name]  # the copy is not RESCO's
    assert "rrrrrrGGGGrr" not in _green_states(copy, CLUSTER)

    s = load(f"resco:{name}")
    assert s.net_file.is_relative_to(cache)
    assert hashlib.sha256(s.net_file.read_bytes()).hexdigest() == RESCO_NET_SHA256[name]
    assert "rrrrrrGGGGrr" in _green_states(s.net_file, CLUSTER)  # the cluster's 25 s green is back
    # the same demand and window as sumo-rl's config, and a sumocfg beside it that runs the restored file
    plain = from_sumocfg(_resco_root() / name / f"{name}.sumocfg")
    assert (s.route_files, s.begin_s, s.end_s) == (tuple(p.resolve() for p in plain.route_files), plain.begin_s,
                                                   plain.end_s)
    beside = from_sumocfg(s.net_file.parent / f"{name}.sumocfg")
    assert beside.net_file == s.net_file and beside.route_files == s.route_files
    assert load(f"resco:{name}").net_file == s.net_file  # written once, then reused


def test_networks_whose_copy_is_rescos_are_used_where_sumo_rl_put_them(cache):
    s = load("resco:cologne1")
    assert s.net_file == _resco_root() / "cologne1" / "cologne1.net.xml"
    assert not cache.exists()


def test_a_copy_that_no_longer_restores_to_rescos_file_is_refused(tmp_path):
    folder = tmp_path / "ingolstadt7"
    shutil.copytree(_resco_root() / "ingolstadt7", folder)
    net = folder / "ingolstadt7.net.xml"
    net.write_bytes(net.read_bytes().replace(b'duration="38"', b'duration="39"', 1))
    with pytest.raises(RescoNetworkError, match="does not give RESCO's ingolstadt7"):
        resco_sumocfg(folder, "ingolstadt7")


def test_an_unwritable_cache_is_said_in_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("SIGNALWISE_CACHE_DIR", str(blocker))
    with pytest.raises(ScenarioError, match="not-a-dir"):
        load("resco:ingolstadt7")


def test_two_installs_sharing_the_cache_each_run_their_own_route_files(tmp_path):
    """The restored network's sumocfg names the route files of the sumo-rl it came from: a second install (a CI
    clone beside a checkout) sharing the cache got the first one's, and failed once that install was removed."""
    first, second = tmp_path / "first" / "ingolstadt7", tmp_path / "second" / "ingolstadt7"
    shutil.copytree(_resco_root() / "ingolstadt7", first)
    shutil.copytree(_resco_root() / "ingolstadt7", second)
    resco_sumocfg(first, "ingolstadt7")
    shutil.rmtree(first)
    mine = from_sumocfg(resco_sumocfg(second, "ingolstadt7"))
    assert mine.route_files and all(p.is_relative_to(second.resolve()) and p.is_file() for p in mine.route_files)
