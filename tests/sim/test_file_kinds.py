"""A SUMO file given as the wrong kind is refused in one line that says what it is and which option takes it:
a network given as a route file ran with no demand (the run only warned that no vehicle was due), and a network
given as a config was refused as naming no net-file. The built-in `single` scenario's own files."""

from __future__ import annotations

import gzip
import shutil

import pytest
from support.cli import signalwise

from signalwise.sim.scenario import ScenarioError, from_files, from_sumocfg, load

SINGLE = load("single")
NET, ROUTES, CONFIG = SINGLE.net_file, SINGLE.route_files[0], SINGLE.net_file.with_name("scenario.sumocfg")


@pytest.mark.parametrize(("args", "said"), [
    (("--net", str(NET), "--routes", str(NET)), "a network, not a route or additional file; give it as --net"),
    (("--sumocfg", str(NET)), "a network, not a SUMO config (.sumocfg); give it as --net"),
    (("--net", str(CONFIG), "--routes", str(ROUTES)), "a SUMO config, not a network (.net.xml); give it as --sumocfg"),
    (("--net", str(ROUTES), "--routes", str(ROUTES)), "a route file, not a network (.net.xml); give it as --routes"),
    (("--sumocfg", str(ROUTES)), "a route file, not a SUMO config (.sumocfg); give it as --routes"),
], ids=["net as routes", "net as config", "config as net", "routes as net", "routes as config"])
def test_run_refuses_a_file_of_the_wrong_kind_in_one_line(args, said, tmp_path):
    done = signalwise("run", *args, "--duration", "60", "--out", str(tmp_path / "runs"))
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and said in errors[0], done.stderr
    assert not (tmp_path / "runs").exists()


def test_the_right_kinds_are_taken_also_gzipped(tmp_path):
    net_gz = tmp_path / "net.net.xml.gz"
    with open(NET, "rb") as src, gzip.open(net_gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert from_files(net_gz, (ROUTES,)).net_file == net_gz
    assert from_sumocfg(CONFIG).net_file.resolve() == NET.resolve()
    # the files' kinds are checked, not stored: the scenario's own kind stays what its maker says
    assert from_files(NET, (ROUTES,)).kind == "user" and from_sumocfg(CONFIG).kind == "user"
    with pytest.raises(ScenarioError, match="a network, not a route"):
        from_files(NET, (net_gz,))
