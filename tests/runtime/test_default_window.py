"""A run whose window is the one-hour default (a network given as --net/--routes, or a .sumocfg with no end) and
whose routes' last departure comes long before its end says so, at its start on stderr and among its warnings,
with the --duration that would stop it sooner; a run given its end says nothing (runtime/default_window.py).

Real runs on the built-in `single` network with a short route file written here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
SINGLE = Path(__file__).resolve().parents[2] / "src" / "signalwise" / "sim" / "scenarios" / "single"
#: the single network's edges into and out of its junction C
THROUGH = [("N_C", "C_S"), ("S_C", "C_N"), ("E_C", "C_W"), ("W_C", "C_E")]


def _routes(path: Path, last_depart_s: float, every_s: float = 10.0) -> Path:
    trips = []
    t, i = 0.0, 0
    while t <= last_depart_s:
        frm, to = THROUGH[i % len(THROUGH)]
        trips.append(f'  <trip id="v{i}" depart="{t:g}" from="{frm}" to="{to}"/>')
        t, i = t + every_s, i + 1
    path.write_text("<routes>\n" + "\n".join(trips) + "\n</routes>\n")
    return path


def _run(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    done = subprocess.run([SIGNALWISE, "run", "-c", "actuated", "--run-dir", "run", "--record", "lean",
                           "--evidence", "inline", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    return done, json.loads((cwd / "run" / "metrics.json").read_text())


def _edges_exist() -> None:
    net = (SINGLE / "net.net.xml").read_text()
    for frm, to in THROUGH:
        assert f'id="{frm}"' in net and f'id="{to}"' in net


def test_a_default_hour_far_past_the_last_departure_is_said_at_start_and_among_the_warnings(tmp_path: Path) -> None:
    _edges_exist()
    routes = _routes(tmp_path / "short.rou.xml", 300)
    done, metrics = _run(tmp_path, "--net", str(SINGLE / "net.net.xml"), "--routes", str(routes))
    said = " ".join(done.stderr.split())
    expected = ("the routes' last departure is at 300 s, but the run simulates 0-3600 s")
    # on stderr as it starts (a `warning:` line, as other start warnings), once more under the summary
    assert said.count(f"warning: {expected}") == 1, said
    assert expected in " ".join(done.stdout.split())
    assert "give --duration 600" in said  # 300 s of departures and 300 s for the last vehicles to leave
    assert any(expected in w for w in metrics["warnings"])
    # what it warns of: an hour simulated, the demand gone long before
    assert metrics["network"]["vehicles_total"] == 31 and metrics["network"]["running_at_end"] == 0


def test_a_run_given_its_end_is_not_warned(tmp_path: Path) -> None:
    routes = _routes(tmp_path / "short.rou.xml", 300)
    done, metrics = _run(tmp_path, "--net", str(SINGLE / "net.net.xml"), "--routes", str(routes),
                         "--duration", "600")
    assert "last departure" not in done.stderr
    assert not any("last departure" in w for w in metrics.get("warnings", []))


def test_a_sumocfg_end_is_a_given_end_and_none_is_the_default_hour(tmp_path: Path) -> None:
    from signalwise.runtime.default_window import default_window_warning
    from signalwise.sim.scenario import from_sumocfg

    routes = _routes(tmp_path / "short.rou.xml", 300)
    net = SINGLE / "net.net.xml"
    with_end = tmp_path / "with_end.sumocfg"
    with_end.write_text(f'<configuration><input><net-file value="{net}"/><route-files value="{routes}"/></input>'
                        '<time><begin value="0"/><end value="3600"/></time></configuration>')
    without = tmp_path / "without.sumocfg"
    without.write_text(f'<configuration><input><net-file value="{net}"/><route-files value="{routes}"/></input>'
                       '</configuration>')
    assert default_window_warning(None, from_sumocfg(with_end)) is None
    assert "last departure is at 300 s" in default_window_warning(None, from_sumocfg(without))
    assert default_window_warning(900.0, from_sumocfg(without)) is None


def test_the_last_departure_is_read_only_where_it_is_known(tmp_path: Path) -> None:
    from signalwise.runtime.default_window import last_departure_s

    known = tmp_path / "known.rou.xml"
    known.write_text('<routes><vehicle id="a" depart="00:05:00"><route edges="N_C C_S"/></vehicle>'
                     '<flow id="f" begin="0" end="420" period="10" from="N_C" to="C_S"/>'
                     '<person id="p" depart="100"><walk edges="N_C"/></person></routes>')
    assert last_departure_s((known,)) == 420.0
    open_flow = tmp_path / "open.rou.xml"  # a flow with no end runs as long as the simulation: unknown
    open_flow.write_text('<routes><flow id="f" begin="0" period="10" from="N_C" to="C_S"/></routes>')
    assert last_departure_s((known, open_flow)) is None
    triggered = tmp_path / "triggered.rou.xml"
    triggered.write_text('<routes><person id="p" depart="triggered"><walk edges="N_C"/></person></routes>')
    assert last_departure_s((triggered,)) is None
