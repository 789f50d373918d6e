"""A vehicle SUMO discards before a red signal that signalwise drives: the warning names the link and says the
control may never turn it green as SUMO sees it, not that the route file is wrong."""

from __future__ import annotations

from pathlib import Path

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

SINGLE = Path(__file__).parents[2] / "src" / "signalwise" / "sim" / "scenarios" / "single"


def test_a_vehicle_discarded_before_a_red_link_names_the_link_and_the_control(tmp_path):
    routes = tmp_path / "discard.rou.xml"
    routes.write_text("""<routes>
    <vType id="car" length="4.5" accel="2.6" decel="4.5" sigma="0"/>
    <route id="r" edges="W_C C_S"/>
    <vehicle id="too-fast" type="car" route="r" depart="6" departPos="234" departSpeed="13.8" departLane="best"/>
</routes>
""")
    cfg = RunConfig(net=SINGLE / "net.net.xml", routes=[routes], controller="fixed", duration_s=60,
                    emissions=False, record="lean", out_dir=tmp_path)
    metrics = execute_run(cfg, tmp_path / "run").metrics
    errors = (tmp_path / "run" / "sumo" / "errors.log").read_text()
    assert "never switches to 'G'" in errors
    link = errors.split("link ", 1)[1].split(" ", 1)[0]
    warning = next(w for w in metrics["warnings"] if "discarded by SUMO" in w)
    assert f"signal 'C' link {link}" in warning and "may never turn green under this control" in warning, warning
    assert "route file gives" not in warning
