"""A SUMO_HOME the user set is kept, and said once when it holds none of SUMO's data: the simulations run the
wheel's SUMO whatever it says. Fresh processes (SUMO_HOME is read once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: two look-ups and libsumo loaded: the warning comes once; then SUMO_HOME as the process keeps it
PROBE = ("from signalwise.sim.sumo_home import sumo_home, import_libsumo; import os; "
         "sumo_home(); sumo_home(); import_libsumo(); print(os.environ['SUMO_HOME'])")


def _probe(sumo_home: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SUMO_HOME", "SIGNALWISE_SUMO_HOME_WARNED")}
    if sumo_home is not None:
        env["SUMO_HOME"] = sumo_home
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("where", ["no such directory", "an empty directory"])
def test_a_sumo_home_without_sumos_data_is_kept_and_said_once(tmp_path, where):
    given = str(tmp_path / "nowhere") if where == "no such directory" else str(tmp_path)
    r = _probe(given)
    assert r.stdout.strip() == given  # kept, for SUMO's own tools
    said = [line for line in r.stderr.splitlines() if "SUMO_HOME" in line]
    assert len(said) == 1, r.stderr
    assert f"SUMO_HOME={given}" in said[0] and "data/xsd" in said[0] and "unset SUMO_HOME" in said[0]


def test_the_wheels_own_sumo_home_or_none_says_nothing():
    import sumo

    for given in (None, str(sumo.SUMO_HOME)):
        r = _probe(given)
        assert r.stdout.strip() == str(sumo.SUMO_HOME)
        assert "SUMO_HOME" not in r.stderr, r.stderr
