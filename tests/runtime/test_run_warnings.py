"""What a run on your own network says about it: settings of your .sumocfg it did not apply, a window in which no
vehicle was due, vehicles that never got in (and not the one due at the very last step)."""

from __future__ import annotations

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load

SINGLE = load("single")


def _sumocfg(tmp_path, begin: float, end: float, more: str = ""):
    path = tmp_path / "mine.sumocfg"
    path.write_text(f'<configuration><input><net-file value="{SINGLE.net_file}"/>'
                    f'<route-files value="{tmp_path / "r.rou.xml"}"/></input>'
                    f'<time><begin value="{begin:g}"/><end value="{end:g}"/></time>{more}</configuration>')
    return path


def _routes(tmp_path, departs):
    rows = "".join(f'<vehicle id="v{d:g}" depart="{d:g}"><route edges="E_C C_W"/></vehicle>' for d in departs)
    (tmp_path / "r.rou.xml").write_text(f"<routes>{rows}</routes>")


def _run(tmp_path, sumocfg, name="run"):
    cfg = RunConfig(sumocfg=sumocfg, controller="max-pressure", emissions=False, record="lean")
    return execute_run(cfg, tmp_path / name).metrics


def test_a_sumocfg_setting_the_run_does_not_apply_is_a_warning(tmp_path):
    _routes(tmp_path, [0, 5])
    more = '<processing><tls.all-off value="true"/><time-to-teleport value="-1"/></processing>'
    metrics = _run(tmp_path, _sumocfg(tmp_path, 0, 60, more))
    notes = [w for w in metrics.get("warnings", ()) if "not applied" in w]
    assert len(notes) == 1 and notes[0].startswith("mine.sumocfg sets tls.all-off true, time-to-teleport -1: "), notes
    assert not any("not applied" in w for w in _run(tmp_path, _sumocfg(tmp_path, 0, 60), "plain").get("warnings", ()))


def test_a_window_with_no_vehicle_due_says_so(tmp_path):
    _routes(tmp_path, [0, 5])
    metrics = _run(tmp_path, _sumocfg(tmp_path, 100, 160))
    assert metrics["network"]["vehicles_total"] == 0
    # a window that does not begin at 0 is given in times of day too (`sim.scenario.seconds_text`)
    assert any(w.startswith("no vehicle was due to depart between 100 s (00:01:40) and 160 s (00:02:40)")
               for w in metrics["warnings"]), metrics["warnings"]


def test_only_a_vehicle_that_waited_to_enter_is_warned_about(tmp_path):
    """A vehicle due at the last step is loaded and never inserted with 0 s of delay: no entry was blocked."""
    _routes(tmp_path, [0, 60])
    metrics = _run(tmp_path, _sumocfg(tmp_path, 0, 60))
    assert metrics["network"]["never_inserted"] == 1
    assert not any("never entered" in w for w in metrics.get("warnings", ())), metrics.get("warnings")
